{#-
  drifted_fields: what the tap received and could not fit into the schema's typed
  columns (tap setting schema_changes, default keep), as the text of one JSON
  object: a new field under its name, a value whose type no longer fits under its
  field's name (its typed column is then null). Null when nothing drifted.
-#}

{#-
  The value of one key of drifted_fields, as text: a string as it is, a number or
  true/false as the warehouse prints it (1.50 may read 1.5), an object or array as
  its JSON text (spacing differs per warehouse); null when the key is absent, its
  value is JSON null, or drifted_fields is null. Any key, dots and spaces included,
  is read as one name, never as a path.

  One expression per warehouse (adapter.dispatch): another adapter gets an error
  naming the macro to add, <adapter>__kaleyra_rcs_drifted_field.
-#}
{% macro kaleyra_rcs_drifted_field(field, column='drifted_fields') -%}
    {%- if '"' in field or '\\' in field -%}
        {{ exceptions.raise_compiler_error(
            "kaleyra_rcs: a drifted field name with a double quote or a backslash cannot be read: " ~ field
        ) }}
    {%- endif -%}
    {{- return(adapter.dispatch('kaleyra_rcs_drifted_field', 'kaleyra_rcs')(field, column)) -}}
{%- endmacro %}

{#- DuckDB: a JSON pointer (/name, with ~ and / escaped), which never splits on dots. -#}
{% macro duckdb__kaleyra_rcs_drifted_field(field, column) -%}
    {%- set pointer = '/' ~ field.replace('~', '~0').replace('/', '~1') -%}
    json_extract_string({{ column }}, '{{ dbt.escape_single_quotes(pointer) }}')
{%- endmacro %}

{% macro postgres__kaleyra_rcs_drifted_field(field, column) -%}
    (cast({{ column }} as jsonb) ->> '{{ dbt.escape_single_quotes(field) }}')
{%- endmacro %}

{#- Snowflake: the quoted name is one key; cast to text, a JSON null is SQL NULL. -#}
{% macro snowflake__kaleyra_rcs_drifted_field(field, column) -%}
    try_parse_json({{ column }}):"{{ field }}"::varchar
{%- endmacro %}

{#- BigQuery: JSON_VALUE reads scalars only; an object or array is JSON_QUERY's text. -#}
{% macro bigquery__kaleyra_rcs_drifted_field(field, column) -%}
    {%- set path = dbt.escape_single_quotes('$."' ~ field ~ '"') -%}
    coalesce(json_value({{ column }}, '{{ path }}'), nullif(json_query({{ column }}, '{{ path }}'), 'null'))
{%- endmacro %}

{% macro default__kaleyra_rcs_drifted_field(field, column) -%}
    {{ exceptions.raise_compiler_error(
        "kaleyra_rcs: no way to read drifted_fields on " ~ target.type ~ " yet: add a macro "
        ~ target.type ~ "__kaleyra_rcs_drifted_field(field, column) to your project"
    ) }}
{%- endmacro %}

{#-
  The var kaleyra_rcs_pass_through_fields, checked: one {field, column} per entry.
  An entry is a field name, or {name: ..., alias: ...}. The column is the alias, or
  the name in lower case with every character other than a-z, 0-9 and _ made _,
  plus the suffix _as_sent when that name is taken (in `taken`: a column of the
  model or a field of the tap's schema, e.g. carrierid -> carrierid_as_sent).
-#}
{% macro kaleyra_rcs_pass_through_fields(taken) -%}
    {%- set fields = [] -%}
    {%- set columns = [] + taken -%}
    {%- set entries = var('kaleyra_rcs_pass_through_fields', []) or [] -%}
    {%- if entries is string or entries is mapping -%}
        {%- set entries = [entries] -%}
    {%- endif -%}
    {%- for entry in entries -%}
        {%- if entry is mapping -%}
            {%- set field, alias = entry.get('name'), entry.get('alias') -%}
        {%- else -%}
            {%- set field, alias = entry, none -%}
        {%- endif -%}
        {%- if field is not string or field == '' -%}
            {{ exceptions.raise_compiler_error(
                "kaleyra_rcs_pass_through_fields: each entry is a field name or {name: ..., alias: ...}, not "
                ~ entry
            ) }}
        {%- endif -%}
        {%- if alias -%}
            {%- set column = alias | string -%}
        {%- else -%}
            {%- set column = modules.re.sub('[^a-z0-9_]', '_', field | lower) -%}
            {%- if column in taken -%}
                {%- set column = column ~ '_as_sent' -%}
            {%- endif -%}
        {%- endif -%}
        {%- if not modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', column) -%}
            {{ exceptions.raise_compiler_error(
                "kaleyra_rcs_pass_through_fields: " ~ field ~ " would be column " ~ column
                ~ ", not a plain SQL name: give it an alias"
            ) }}
        {%- endif -%}
        {%- if column | lower in columns -%}
            {{ exceptions.raise_compiler_error(
                "kaleyra_rcs_pass_through_fields: column " ~ column ~ " (for " ~ field
                ~ ") is already a column of the model: give it another alias"
            ) }}
        {%- endif -%}
        {%- do columns.append(column | lower) -%}
        {%- do fields.append({'field': field, 'column': column}) -%}
    {%- endfor -%}
    {{- return(fields) -}}
{%- endmacro %}
