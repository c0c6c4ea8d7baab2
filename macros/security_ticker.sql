{#-
    The current ticker of the security a (ticker, date) pair names (int_ticker_history), or the ticker
    itself when it never changed. Use with a left join:

        left join {{ ref('int_ticker_history') }} as history
            on {{ security_ticker_join('history', 'bars.ticker', 'bars.session_date') }}
        ... {{ security_ticker('history', 'bars.ticker') }} as ticker

    Spans of one symbol never overlap (a symbol is reused only after its previous holder left it), so
    the join finds at most one row; a date outside every span keeps its ticker.
-#}
{% macro security_ticker_join(history, ticker, day) -%}
    {{ history }}.ticker = {{ ticker }}
    and ({{ history }}.valid_until_date is null or {{ day }} < {{ history }}.valid_until_date)
    and {{ day }} >= {{ history }}.valid_from_date
{%- endmacro %}

{% macro security_ticker(history, ticker) -%}
    coalesce({{ history }}.current_ticker, {{ ticker }})
{%- endmacro %}
