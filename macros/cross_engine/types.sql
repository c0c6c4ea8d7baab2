{#- Column types whose names differ between the engines. `string`, `double`, `bigint`, `integer`,
    `date` and `boolean` are spelled the same on both and are written out in the models. -#}

{#- An instant in time: DuckDB's `timestamp with time zone`; Spark's `timestamp` is already one
    (shown in the session time zone, UTC in profiles.yml). -#}
{% macro type_instant() -%}
    {{ return(adapter.dispatch('type_instant', 'quantmini')()) }}
{%- endmacro %}

{% macro default__type_instant() -%}
    {{ return('timestamp with time zone') }}
{%- endmacro %}

{% macro spark__type_instant() -%}
    {{ return('timestamp') }}
{%- endmacro %}


{#- A list of strings: `varchar[]` / `array<string>`. -#}
{% macro type_string_list() -%}
    {{ return(adapter.dispatch('type_string_list', 'quantmini')()) }}
{%- endmacro %}

{% macro default__type_string_list() -%}
    {{ return('varchar[]') }}
{%- endmacro %}

{% macro spark__type_string_list() -%}
    {{ return('array<string>') }}
{%- endmacro %}


{#- A type written in the source YAML (DuckDB spelling, the bronze contract) in this engine's spelling:
    on Spark `varchar` is `string`, `timestamp with time zone` is `timestamp`, `t[]` is `array<t>` and
    `struct(a t, ...)` is `struct<a: t, ...>`. -#}
{% macro engine_type(data_type) -%}
    {{ return(adapter.dispatch('engine_type', 'quantmini')(data_type)) }}
{%- endmacro %}

{% macro default__engine_type(data_type) -%}
    {{ return(data_type) }}
{%- endmacro %}

{% macro spark__engine_type(data_type) -%}
    {%- set re = modules.re -%}
    {%- set spelled = data_type | lower | replace('timestamp with time zone', 'timestamp') -%}
    {%- set spelled = re.sub('\\bvarchar\\b', 'string', spelled) -%}
    {%- set spelled = re.sub('struct\\(([^()]*)\\)', 'struct<\\1>', spelled) -%}
    {%- set spelled = re.sub('(\\w+)\\s+(\\w+)(?=[,>])', '\\1: \\2', spelled) -%}
    {%- set spelled = re.sub('^(.*)\\[\\]$', 'array<\\1>', spelled) -%}
    {{ return(spelled) }}
{%- endmacro %}
