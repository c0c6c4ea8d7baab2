{#- One output row per element of a list, written in the select list (a generator on Spark). -#}

{#- `<element alias>` for each element; no row for an empty or NULL list. -#}
{% macro explode_list(list, element_alias) -%}
    {{ return(adapter.dispatch('explode_list', 'quantmini')(list, element_alias)) }}
{%- endmacro %}

{% macro default__explode_list(list, element_alias) -%}
    unnest({{ list }}) as {{ element_alias }}
{%- endmacro %}

{% macro spark__explode_list(list, element_alias) -%}
    explode({{ list }}) as {{ element_alias }}
{%- endmacro %}


{#- `<element alias>` and `<position alias>` for each element of a list. The position orders the
    elements (1-based on DuckDB, 0-based on Spark): use it for order, not as a value. -#}
{% macro explode_list_with_position(list, element_alias, position_alias) -%}
    {{ return(adapter.dispatch('explode_list_with_position', 'quantmini')(list, element_alias, position_alias)) }}
{%- endmacro %}

{% macro default__explode_list_with_position(list, element_alias, position_alias) -%}
    unnest({{ list }}) as {{ element_alias }},
    generate_subscripts({{ list }}, 1) as {{ position_alias }}
{%- endmacro %}

{% macro spark__explode_list_with_position(list, element_alias, position_alias) -%}
    posexplode({{ list }}) as ({{ position_alias }}, {{ element_alias }})
{%- endmacro %}
