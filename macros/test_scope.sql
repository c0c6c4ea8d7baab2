{#-
    Data tests on a daily refresh check the sessions that changed, not all history.

    dbt wraps the model of every generic test in `get_where_subquery` (for the test's `where` config).
    When the var `test_sessions_from` (an ISO date) is set, this also narrows a relation that has a
    `session_date` column to the sessions from that date on; relations without one are tested whole.
    A REST staging model whose rows are dated by another column (`meta.test_scope_column`, e.g. an
    ex-dividend date) is narrowed to the trailing window the daily refresh listed again: `test_window_days`
    before that date.
    `quantmini refresh daily` sets both vars (the first session its ingest loaded or re-loaded, the REST
    datasets' widest window); the weekly
    refresh, a plain `dbt build` and any `--full-refresh` build check everything.
-#}
{% macro get_where_subquery(relation) -%}
    {#- the first condition must not start with "(": Spark would read `t where (x)` as an alias -#}
    {%- set conditions = [] -%}
    {%- set since = var('test_sessions_from', none) -%}
    {%- if since and execute and not flags.FULL_REFRESH -%}
        {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
        {%- set dated = test_scope_column(relation) -%}
        {%- set window_days = var('test_window_days', none) -%}
        {%- if 'session_date' in columns -%}
            {%- do conditions.append("session_date >= cast('" ~ since ~ "' as date)") -%}
        {%- elif dated and window_days is not none and dated in columns -%}
            {#- a REST dataset the daily refresh lists over a trailing window: the rows of that window -#}
            {%- set window = modules.datetime.timedelta(days=window_days | int) -%}
            {%- set start = modules.datetime.date.fromisoformat(since) - window -%}
            {%- do conditions.append(dated ~ " >= cast('" ~ start.isoformat() ~ "' as date)") -%}
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


{#- The same scope for singular tests (tests/dbt/), which dbt does not wrap: a condition on
    `session_date` for their `where`, or `true` outside a daily refresh. -#}
{% macro test_sessions_scope() -%}
    {%- set since = var('test_sessions_from', none) -%}
    {%- if since and execute and not flags.FULL_REFRESH -%}
        {{ return("session_date >= cast('" ~ since ~ "' as date)") }}
    {%- endif -%}
    {{ return('true') }}
{%- endmacro %}


{#- The date column a model names in `meta.test_scope_column` (REST staging models partitioned by a
    date that is not a session), or none. -#}
{% macro test_scope_column(relation) -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and (node.alias or node.name) == relation.identifier -%}
            {{ return(node.config.meta.get('test_scope_column')) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}
