{#-
    Data tests on a daily refresh check the sessions that changed, not all history.

    dbt wraps the model of every generic test in `get_where_subquery` (for the test's `where` config).
    When the var `test_sessions_from` (an ISO date) is set, this also narrows a relation that has a
    `session_date` column to the sessions from that date on; relations without one are tested whole.
    `quantmini refresh daily` sets it to the first session its ingest loaded or re-loaded; the weekly
    refresh, a plain `dbt build` and any `--full-refresh` build check everything.
-#}
{% macro get_where_subquery(relation) -%}
    {#- the first condition must not start with "(": Spark would read `t where (x)` as an alias -#}
    {%- set conditions = [] -%}
    {%- set since = var('test_sessions_from', none) -%}
    {%- if since and execute and not flags.FULL_REFRESH -%}
        {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
        {%- if 'session_date' in columns -%}
            {%- do conditions.append("session_date >= cast('" ~ since ~ "' as date)") -%}
        {%- endif -%}
    {%- endif -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')' if conditions else where) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
