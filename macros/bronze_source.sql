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
            {{ bronze_relation(relation, location) }}
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


{#- True when at least one file matches the glob. -#}
{% macro bronze_files_exist(location) -%}
    {{ return(adapter.dispatch('bronze_files_exist', 'quantmini')(location)) }}
{%- endmacro %}

{#- DuckDB's glob() never raises on a missing folder. -#}
{% macro default__bronze_files_exist(location) -%}
    {%- set query -%}
        select count(*) as file_count from glob('{{ location }}')
    {%- endset -%}
    {%- set result = run_query(query) -%}
    {{ return(result.columns[0].values()[0] > 0) }}
{%- endmacro %}

{#- Spark reads a bronze folder as a Parquet dataset, and reading a folder that is not there is an
    error, so Spark lists the Parquet files under bronze/ itself (the `binaryFile` source, file names
    only: no content is read) and counts those inside the source's folder. Bronze itself must exist. -#}
{% macro spark__bronze_files_exist(location) -%}
    {%- set folder = bronze_root(location) -%}
    {%- set bronze = folder.split('/bronze/')[0] ~ '/bronze' -%}
    {%- set inside = '/bronze/' ~ folder.split('/bronze/')[-1] ~ '/' -%}
    {%- set listing -%}
        create or replace temporary view quantmini_bronze_files
        using binaryFile
        options (path '{{ bronze }}', recursiveFileLookup 'true', pathGlobFilter '*.parquet')
    {%- endset -%}
    {%- do run_query(listing) -%}
    {%- set query -%}
        select count(*) as file_count from quantmini_bronze_files where instr(path, '{{ inside }}') > 0
    {%- endset -%}
    {%- set result = run_query(query) -%}
    {{ return(result.columns[0].values()[0] > 0) }}
{%- endmacro %}


{#- The folder a bronze glob reads: the path before its first wildcard (`.../bronze/stocks_daily`). -#}
{% macro bronze_root(location) -%}
    {%- set folder = location.split('*')[0] -%}
    {{ return(folder.rstrip('/')) }}
{%- endmacro %}


{#- The relation of a bronze source that has files: dbt-duckdb renders the source's
    `external_location` (read_parquet of the glob); Spark reads the folder as a Parquet dataset
    (Hive partition folders discovered, schemas merged by name: spark.sql.parquet.mergeSchema). -#}
{% macro bronze_relation(relation, location) -%}
    {{ return(adapter.dispatch('bronze_relation', 'quantmini')(relation, location)) }}
{%- endmacro %}

{% macro default__bronze_relation(relation, location) -%}
    {{ return(relation) }}
{%- endmacro %}

{% macro spark__bronze_relation(relation, location) -%}
    {{ return('parquet.`' ~ bronze_root(location) ~ '`') }}
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
        {%- do typed_nulls.append("cast(null as " ~ engine_type(column.data_type) ~ ") as " ~ column.name) -%}
    {%- endfor -%}
    (select {{ typed_nulls | join(", ") }} where false)
{%- endmacro %}
