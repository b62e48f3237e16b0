-- Every tester the loader has stored, with types made the same on every warehouse.
-- Rows the loader marked deleted are kept on purpose: whether a tester is still
-- registered is decided from the runs (int_kaleyra_rcs__tester_presence), the same
-- way on targets that never mark deletions (target-duckdb) as on those that do.
select
    cast(id as {{ dbt.type_string() }}) as id,
    cast(agent_no as {{ dbt.type_string() }}) as agent_no,
    cast(phoneno as {{ dbt.type_string() }}) as phoneno,
    cast(test_status as {{ dbt.type_string() }}) as test_status,
    cast(status as {{ dbt.type_string() }}) as status,
    cast(override_dcs_check as {{ dbt.type_boolean() }}) as override_dcs_check,
    cast(carrierid as {{ dbt.type_bigint() }}) as carrierid,
    cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
    cast(_sdc_extracted_at as {{ dbt.type_timestamp() }}) as seen_at
from {{ source('kaleyra_rcs', 'testers') }}
