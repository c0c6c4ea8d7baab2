{#-
    Retention guard for incremental models that keep history bronze no longer holds.

    `quantmini cleanup --bronze` removes old bronze sessions; the incremental models keep the rows they
    built from them (docs/operations.md, "Retention"). A full refresh rebuilds a model from bronze
    alone, so it would drop those sessions. On `--full-refresh` this refuses, naming the model, the
    sessions it would lose and how to proceed, unless `--vars '{allow_history_loss: true}'` says the
    loss is intended. Renders nothing.
-#}
{% macro guard_retained_history(source_relation, date_column='session_date') -%}
    {#- unit tests render models without a `this` -#}
    {%- if execute and flags.FULL_REFRESH and this is not none and not var('allow_history_loss', false) -%}
        {%- set existing = adapter.get_relation(this.database, this.schema, this.identifier) -%}
        {%- if existing is not none -%}
            {%- set query -%}
                select count(distinct {{ date_column }}), min({{ date_column }}), max({{ date_column }})
                from {{ existing }}
                where {{ date_column }} < coalesce(
                    (select min({{ date_column }}) from {{ source_relation }}), date '9999-12-31'
                )
            {%- endset -%}
            {%- set row = run_query(query).rows[0] -%}
            {%- if row[0] > 0 -%}
                {{ exceptions.raise_compiler_error(
                    this.identifier ~ " holds " ~ row[0] ~ " session(s) from " ~ row[1] ~ " to " ~ row[2]
                    ~ " that bronze no longer has (removed by `quantmini cleanup --bronze`); --full-refresh"
                    ~ " would drop them. Reload them first (quantmini backfill -s " ~ row[1] ~ " -e " ~ row[2]
                    ~ "), or pass --vars '{allow_history_loss: true}' to rebuild from bronze alone.") }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
