{#-
    Helpers for incremental models whose rows are built per session.

    A bronze session folder is replaced as a whole and carries the dlt load id that wrote it; a model
    stores the newest load id it read for each session as `source_load_id`. Comparing the two finds the
    sessions that are new or were re-loaded since the last build. The dates are rendered as literals so
    DuckDB prunes the Hive partitions it does not need to read.
-#}
{% macro changed_session_dates_filter(
    source_relation, load_id_column='load_id', stored_load_id_column='source_load_id'
) -%}
    {%- if not execute -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set query -%}
        with
        source_sessions as (
            select session_date, max({{ load_id_column }}) as load_id
            from {{ source_relation }}
            group by session_date
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
