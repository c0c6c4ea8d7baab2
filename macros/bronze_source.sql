{#-
    Resolve a bronze source for a staging model.

    Bronze datasets land one by one (flat files first, REST datasets later), and `dbt build` must work
    at every point of that. When the source's files exist this renders the source relation, which
    dbt-duckdb turns into the `read_parquet(...)` expression configured as `external_location`. When no
    file matches the source's `location` glob yet, it renders an empty relation with the column names
    and types documented in the source YAML, so every model downstream builds and simply has no rows.
-#}
{% macro bronze_source(source_name, table_name) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- if not execute -%}
        {{ relation }}
    {%- else -%}
        {%- set node = bronze_source_node(source_name, table_name) -%}
        {%- set location = node.config.meta.get('location') or node.meta.get('location') -%}
        {%- if location is none -%}
            {{ exceptions.raise_compiler_error(
                "source " ~ source_name ~ "." ~ table_name ~ " has no meta.location glob in its YAML") }}
        {%- endif -%}
        {%- if bronze_files_exist(location) -%}
            {{ relation }}
        {%- else -%}
            {{ bronze_empty_relation(node) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{% macro bronze_source_node(source_name, table_name) -%}
    {%- for node in graph.sources.values() -%}
        {%- if node.source_name == source_name and node.name == table_name -%}
            {{ return(node) }}
        {%- endif -%}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("unknown source " ~ source_name ~ "." ~ table_name) }}
{%- endmacro %}


{#- True when at least one file matches the glob; DuckDB's glob() never raises on a missing folder. -#}
{% macro bronze_files_exist(location) -%}
    {%- set query -%}
        select count(*) as file_count from glob('{{ location }}')
    {%- endset -%}
    {%- set result = run_query(query) -%}
    {{ return(result.columns[0].values()[0] > 0) }}
{%- endmacro %}


{#- A zero-row relation typed like the documented source columns (every column needs a data_type). -#}
{% macro bronze_empty_relation(node) -%}
    {%- set columns = node.columns.values() | list -%}
    {%- if columns | length == 0 -%}
        {{ exceptions.raise_compiler_error(
            "source " ~ node.source_name ~ "." ~ node.name ~ " documents no columns to type its empty relation") }}
    {%- endif -%}
    {%- set typed_nulls = [] -%}
    {%- for column in columns -%}
        {%- if column.data_type is none -%}
            {{ exceptions.raise_compiler_error(
                "source column " ~ node.name ~ "." ~ column.name ~ " needs a data_type") }}
        {%- endif -%}
        {%- do typed_nulls.append("cast(null as " ~ column.data_type ~ ") as " ~ column.name) -%}
    {%- endfor -%}
    (select {{ typed_nulls | join(", ") }} where false)
{%- endmacro %}
