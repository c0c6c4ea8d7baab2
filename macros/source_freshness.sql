{#-
    `dbt source freshness` on a lake where some datasets were never loaded. dbt's own collect_freshness
    reads the source relation, and a bronze glob with no file behind it is a read error; this override
    answers for such a source with no load time at all, which dbt reads as "loaded infinitely long ago":
    the source warns (every bronze source has a `warn_after` and no `error_after`) and the command exits 0.
    Sources with files are measured by dbt's own macro.
-#}
{% macro collect_freshness(source, loaded_at_field, filter) -%}
    {%- set node = freshness_source_node(source) -%}
    {%- set location = none if node is none else (node.config.meta.get('location') or node.meta.get('location')) -%}
    {%- if location is not none and not bronze_files_exist(location) -%}
        {{ log("source " ~ node.source_name ~ "." ~ node.name ~ " was never loaded: no file matches "
            ~ location, info=true) }}
        {%- call statement('collect_freshness', fetch_result=True, auto_begin=False) -%}
            select
                cast(null as {{ engine_type('timestamp with time zone') }}) as max_loaded_at,
                {{ current_timestamp() }} as snapshotted_at
        {%- endcall -%}
        {{ return(load_result('collect_freshness')) }}
    {%- endif -%}
    {{ return(adapter.dispatch('collect_freshness', 'dbt')(source, loaded_at_field, filter)) }}
{%- endmacro %}


{#- The source node behind a relation that `dbt source freshness` passes in (matched on schema and name). -#}
{% macro freshness_source_node(relation) -%}
    {%- for node in graph.sources.values() -%}
        {%- if node.schema | lower == relation.schema | lower
            and node.identifier | lower == relation.identifier | lower -%}
            {{ return(node) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}
