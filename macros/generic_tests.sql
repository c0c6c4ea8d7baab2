{#-
    Generic data tests used by the model YAML. The dbt hub is out of reach for `dbt deps` here, so the
    few tests the project needs from dbt_utils are written in the project itself.
-#}

{#- Grain test: no two rows share the same values in these columns. -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
{%- set columns_csv = combination_of_columns | join(', ') %}
    select
        {{ columns_csv }},
        count(*) as row_count
    from {{ model }}
    group by {{ columns_csv }}
    having count(*) > 1
{% endtest %}


{#- Rows where a boolean SQL expression over the model's columns is false (NULL passes, like not_null). -#}
{% test expression_is_true(model, expression) %}
    select *
    from {{ model }}
    where not ({{ expression }})
{% endtest %}


{#- Values outside [min_value, max_value]; either bound may be omitted, NULLs are left to not_null. -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}
{%- set lower_op = ">=" if inclusive else ">" -%}
{%- set upper_op = "<=" if inclusive else "<" -%}
{%- set lower = [column_name ~ " " ~ lower_op ~ " " ~ min_value] if min_value is not none else [] -%}
{%- set upper = [column_name ~ " " ~ upper_op ~ " " ~ max_value] if max_value is not none else [] -%}
{%- set conditions = lower + upper %}
    select *
    from {{ model }}
    where
        {{ column_name }} is not null
        and not ({{ conditions | join(" and ") if conditions else "true" }})
{% endtest %}


{#-
    dbt's `relationships`, checked only on the sessions bronze still holds: rows dated before the first
    session of `span_of` were kept by retention (`cleanup --bronze`, docs/operations.md) after their
    parent rows left bronze, and were checked when they were built.
-#}
{% test relationships_in_bronze_span(model, column_name, to, field, span_of, date_column='session_date') %}
    with

    child_rows as (

        select {{ column_name }} as from_field
        from {{ model }}
        where
            {{ column_name }} is not null
            and {{ date_column }} >= (select min(session_date) from {{ span_of }})

    ),

    parent_rows as (

        select {{ field }} as to_field
        from {{ to }}

    )

    select child_rows.from_field
    from child_rows
    left join parent_rows on child_rows.from_field = parent_rows.to_field
    where parent_rows.to_field is null
{% endtest %}
