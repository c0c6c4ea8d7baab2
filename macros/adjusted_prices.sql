{#- The adjusted bar columns: raw prices times the adjustment factor, volume divided by it (Qlib's
    convention, adjusted = raw x factor). One definition for the bars built from bronze and the
    retained bars re-adjusted after a later corporate action, so both give the same bits. -#}
{% macro adjusted_bar_columns(factor='adj_factor') -%}
    open * {{ factor }} as adj_open,
    high * {{ factor }} as adj_high,
    low * {{ factor }} as adj_low,
    close * {{ factor }} as adj_close,
    volume / {{ factor }} as adj_volume,
    vwap * {{ factor }} as adj_vwap
{%- endmacro %}
