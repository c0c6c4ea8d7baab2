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


{#- Post-hook SQL of a model keyed by (listed ticker, session) that rebuilds re-loaded sessions: the
    rows of a session this build wrote carry its new load id, so a stored row of that session with
    another load id is a bar gone from the re-loaded file and is deleted. Nothing on Spark: the
    session's partition was replaced whole. -#}
{% macro delete_replaced_bars() -%}
    {{ return(adapter.dispatch('delete_replaced_bars', 'quantmini')()) }}
{%- endmacro %}

{% macro default__delete_replaced_bars() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} as stored
        where
            stored.built_at < {{ run_started_instant() }}
            and exists (
                select 1 from {{ this }} as written
                where
                    written.built_at = {{ run_started_instant() }}
                    and written.session_date = stored.session_date
                    and written.load_id <> stored.load_id
            )
    {%- endif -%}
{%- endmacro %}

{% macro spark__delete_replaced_bars() -%}
{%- endmacro %}
