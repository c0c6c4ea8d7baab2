{#-
    Helpers for incremental models whose rows are built per session.

    A bronze session folder is replaced as a whole and carries the dlt load id that wrote it; a model
    stores the newest load id it read for each session as `source_load_id`. Comparing the two finds the
    sessions that are new or were re-loaded since the last build. The dates are rendered as literals so
    DuckDB prunes the Hive partitions it does not need to read.
-#}
{% macro changed_session_dates_filter(
    source_relation, load_id_column='load_id', stored_load_id_column='source_load_id', bronze_table=none
) -%}
    {%- if not execute -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set listed = bronze_session_load_ids(bronze_table) if bronze_table else none -%}
    {%- set read_rows -%}
        select session_date, max({{ load_id_column }}) as load_id from {{ source_relation }} group by session_date
    {%- endset -%}
    {%- set query -%}
        with
        source_sessions as (
            {{ listed or read_rows }}
        ),

        stored_sessions as (
            select session_date, max({{ stored_load_id_column }}) as load_id
            from {{ this }}
            group by session_date
        )

        select source_sessions.session_date
        from source_sessions
        left join stored_sessions on source_sessions.session_date = stored_sessions.session_date
        where source_sessions.load_id is distinct from stored_sessions.load_id
        order by source_sessions.session_date
    {%- endset -%}
    {{ return(session_dates_filter(query)) }}
{%- endmacro %}


{#- `session_date in (<the dates the query returns>)`, or `false` when it returns none. -#}
{% macro session_dates_filter(query) -%}
    {%- if not execute -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set dates = run_query(query).columns[0].values() -%}
    {%- if dates | length == 0 -%}
        {{ return('false') }}
    {%- endif -%}
    {%- set literals = [] -%}
    {%- for day in dates -%}
        {%- do literals.append("date '" ~ day ~ "'") -%}
    {%- endfor -%}
    {{ return('session_date in (' ~ literals | join(', ') ~ ')') }}
{%- endmacro %}


{#- The newest load id of every session of a flat-file bronze table (`bronze_table`: a `polygon` source
    name), as a query of (session_date, load_id), from file names alone: a session folder is replaced
    whole and its files are named `<load id>-<file id>.parquet`, so DuckDB's glob() answers without
    opening a file. None (read the rows instead) on other engines or when a file is named otherwise. -#}
{% macro bronze_session_load_ids(bronze_table) -%}
    {{ return(adapter.dispatch('bronze_session_load_ids', 'quantmini')(bronze_table)) }}
{%- endmacro %}

{% macro default__bronze_session_load_ids(bronze_table) -%}
    {%- set node = bronze_source_node('polygon', bronze_table) -%}
    {%- set location = node.config.meta.get('location') or node.meta.get('location') -%}
    {%- set pattern = '/session_date=([0-9]{4}-[0-9]{2}-[0-9]{2})/([0-9]+[.][0-9]+)-[^/]+[.]parquet$' -%}
    {%- set listing -%}
        select
            regexp_extract(file, '{{ pattern }}', 1) as session_day,
            regexp_extract(file, '{{ pattern }}', 2) as load_id
        from glob('{{ location }}')
    {%- endset -%}
    {%- set check -%}
        select count(*) from ({{ listing }}) as files where load_id = ''
    {%- endset -%}
    {%- if run_query(check).columns[0].values()[0] > 0 -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return('select cast(session_day as date) as session_date, max(load_id) as load_id from ('
        ~ listing ~ ') as files group by session_day') }}
{%- endmacro %}

{% macro spark__bronze_session_load_ids(bronze_table) -%}
    {{ return(none) }}
{%- endmacro %}
