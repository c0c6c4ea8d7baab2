{#-
    How an incremental model replaces the sessions it rebuilds (the strategy itself is set for every
    model in dbt_project.yml, where macros cannot be called).

    DuckDB deletes the rows whose key the new rows carry, then inserts them (`delete+insert`). Spark on
    plain Parquet tables cannot delete rows: it replaces whole `session_date` partitions
    (`insert_overwrite` with dynamic partition overwrite). Models keyed by session behave the same on
    both; a model keyed by (ticker, session) must, on Spark, rebuild every ticker of each partition it
    touches (`incremental_replaces_whole_sessions()`).
-#}

{% macro incremental_replaces_whole_sessions() -%}
    {{ return(adapter.dispatch('incremental_replaces_whole_sessions', 'quantmini')()) }}
{%- endmacro %}

{% macro default__incremental_replaces_whole_sessions() -%}
    {{ return(false) }}
{%- endmacro %}

{% macro spark__incremental_replaces_whole_sessions() -%}
    {{ return(true) }}
{%- endmacro %}


{#- Post-hook SQL that deletes stored rows whose (ticker, session) no longer exists in `current` (a
    row gone from a re-loaded session), within bronze's span. Nothing on Spark: the session's
    partition was replaced whole. -#}
{% macro delete_vanished_ticker_sessions(current) -%}
    {{ return(adapter.dispatch('delete_vanished_ticker_sessions', 'quantmini')(current)) }}
{%- endmacro %}

{% macro default__delete_vanished_ticker_sessions(current) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} as stored
        where
            -- rows before bronze's first session are retained history (docs/operations.md, retention)
            stored.session_date >= (select min(session_date) from {{ current }})
            and not exists (
                select 1 from {{ current }} as current_rows
                where current_rows.ticker = stored.ticker and current_rows.session_date = stored.session_date
            )
    {%- endif -%}
{%- endmacro %}

{% macro spark__delete_vanished_ticker_sessions(current) -%}
{%- endmacro %}
