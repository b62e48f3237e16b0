{#-
  PostgreSQL only: a BRIN index on testers_observations.run_started_at, so that an
  incremental build reads only the pages of the runs it has not built (see
  kaleyra_rcs_built_through). Rows are appended in run order, which is what a BRIN
  index needs; it is a few pages for millions of rows. If dbt's user may not create
  it (the loader's user owns the table), the build goes on without it, only slower,
  and says so. Nothing on any other warehouse.
-#}
{% macro kaleyra_rcs_index_observations() -%}
    {%- if target.type == 'postgres' -%}
        do $$
        begin
            create index if not exists testers_observations_run_started_at_brin
                on {{ source('kaleyra_rcs', 'testers_observations') }} using brin (run_started_at);
        exception when insufficient_privilege then
            raise notice 'kaleyra_rcs: no BRIN index on testers_observations (%): builds read the whole table', sqlerrm;
        end
        $$
    {%- endif -%}
{%- endmacro %}
