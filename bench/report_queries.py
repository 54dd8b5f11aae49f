"""The best hand-written SQL for each core report's default grouping, on SQLite and PostgreSQL.

Written as a careful engineer would for this schema and its indexes: one
statement, correlated index lookups for "the last click before", grouping by
ids rather than by built strings. Periods are cut in UTC (the benchmark's
zone). Each returns the grouping as ``key`` and the report's column names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

Range = str | None
CREDITABLE = "('ad_click', 'affiliate_click', 'link_click', 'email_click', 'form')"


class SQL:
    """Dialect snippets."""

    def __init__(self, dialect: str, start: Range, end: Range) -> None:
        self.dialect, self.start, self.end = dialect, start, end

    def _instant(self, day: str) -> str:
        return f"'{day} 00:00:00.000000'" if self.dialect == "sqlite" else f"'{day} 00:00:00+00'"

    def range(self, column: str) -> str:
        """The timestamp column is in the range (UTC days)."""
        parts = []
        if self.start:
            parts.append(f"{column} >= {self._instant(self.start)}")
        if self.end:
            after = (date.fromisoformat(self.end) + timedelta(days=1)).isoformat()
            parts.append(f"{column} < {self._instant(after)}")
        return " AND ".join(parts) or "1 = 1"

    def days_in(self, column: str) -> str:
        """The date column is in the range."""
        parts = []
        if self.start:
            parts.append(f"{column} >= '{self.start}'")
        if self.end:
            parts.append(f"{column} <= '{self.end}'")
        return " AND ".join(parts) or "1 = 1"

    def ratio(self, num: str, den: str) -> str:
        cast = "REAL" if self.dialect == "sqlite" else "DOUBLE PRECISION"
        return f"CAST({num} AS {cast}) / NULLIF({den}, 0)"

    def div(self, num: str, den: str) -> str:
        """Exact division; SQLite divides integers (sums of whole amounts) as integers unless told."""
        return f"({num}) * 1.0 / NULLIF({den}, 0)" if self.dialect == "sqlite" else f"({num}) / NULLIF({den}, 0)"

    def month(self, column: str, is_date: bool = False) -> str:
        if self.dialect == "sqlite":
            return f"strftime('%Y-%m', {column})"
        return f"to_char({column}, 'YYYY-MM')" if is_date else f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM')"

    def days(self, later: str, earlier: str) -> str:
        if self.dialect == "sqlite":
            return f"(julianday({later}) - julianday({earlier}))"
        return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 86400.0)"

    def now(self) -> str:
        return "strftime('%Y-%m-%d %H:%M:%f', 'now')" if self.dialect == "sqlite" else "now()"


def _last_click(q: SQL, kind: str) -> str:
    return f"""(SELECT t.id FROM touchpoint t WHERE t.contact_id = c.contact_id AND t.kind = '{kind}'
               AND t.occurred_at <= c.occurred_at ORDER BY t.occurred_at DESC, t.id DESC LIMIT 1)"""


def ads(dialect: str, start: Range, end: Range) -> str:
    q = SQL(dialect, start, end)
    return f"""
    WITH facts AS (
      SELECT NULLIF(ad, '') AS key, impressions, 0 AS clicks, 0 AS conversions,
             CASE WHEN currency = 'USD' THEN spend ELSE 0 END AS spend
        FROM ad_spend WHERE {q.days_in("day")}
      UNION ALL
      SELECT ad, 0, quantity, 0, 0 FROM touchpoint WHERE kind = 'ad_click' AND {q.range("occurred_at")}
      UNION ALL
      SELECT k.ad, 0, 0, c.quantity, 0 FROM touchpoint c JOIN touchpoint k ON k.id = {_last_click(q, "ad_click")}
       WHERE c.kind = 'conversion' AND c.contact_id IS NOT NULL AND {q.range("c.occurred_at")}
    ), totals AS (
      SELECT key, SUM(impressions) AS impressions, SUM(clicks) AS clicks, SUM(conversions) AS conversions,
             SUM(spend) AS spend FROM facts GROUP BY key
    )
    SELECT key, impressions, clicks, {q.ratio("clicks", "impressions")} AS ctr, conversions,
           {q.ratio("conversions", "clicks")} AS conversion_rate, spend, {q.div("spend", "clicks")} AS cost_per_click
      FROM totals"""


def affiliates(dialect: str, start: Range, end: Range) -> str:
    q = SQL(dialect, start, end)
    return f"""
    WITH facts AS (
      SELECT affiliate AS key, quantity AS clicks, contact_id, 0 AS conversions FROM touchpoint
       WHERE kind = 'affiliate_click' AND {q.range("occurred_at")}
      UNION ALL
      SELECT k.affiliate, 0, NULL, c.quantity FROM touchpoint c
        JOIN touchpoint k ON k.id = {_last_click(q, "affiliate_click")}
       WHERE c.kind = 'conversion' AND c.contact_id IS NOT NULL AND {q.range("c.occurred_at")}
    )
    SELECT key, SUM(clicks) AS clicks, COUNT(DISTINCT contact_id) AS contacts, SUM(conversions) AS conversions,
           {q.ratio("SUM(conversions)", "SUM(clicks)")} AS conversion_rate
      FROM facts GROUP BY key"""


def channels(dialect: str, start: Range, end: Range) -> str:
    q = SQL(dialect, start, end)
    return f"""
    SELECT COALESCE(source, utm_source) AS key, SUM(quantity) AS touchpoints, COUNT(DISTINCT contact_id) AS contacts,
           SUM(CASE WHEN kind = 'conversion' THEN quantity ELSE 0 END) AS conversions,
           SUM(CASE WHEN kind = 'conversion' AND currency = 'USD' THEN value ELSE 0 END) AS conversion_value
      FROM touchpoint WHERE {q.range("occurred_at")}
     GROUP BY COALESCE(source, utm_source)"""


def demographics(dialect: str, start: Range, end: Range) -> str:
    q = SQL(dialect, start, end)
    stage = "+c.stage" if dialect == "sqlite" else "c.stage"  # SQLite: scan the table, no lookup per customer
    return f"""
    SELECT c.country AS key, COUNT(*) AS contacts, {q.ratio("COUNT(*)", "SUM(COUNT(*)) OVER ()")} AS share,
           COUNT(p.contact_id) AS buyers, COALESCE(SUM(p.revenue), 0) AS revenue,
           {q.div("SUM(p.revenue)", "COUNT(p.contact_id)")} AS revenue_per_buyer
      FROM contact c
      LEFT JOIN (SELECT contact_id, SUM(total) AS revenue FROM purchase
                  WHERE {q.range("purchased_at")} AND currency = 'USD' GROUP BY contact_id) p ON p.contact_id = c.id
     WHERE {stage} = 'customer' AND c.erased_at IS NULL AND c.merged_into_id IS NULL
     GROUP BY c.country"""


def products(dialect: str, start: Range, end: Range) -> str:
    q = SQL(dialect, start, end)
    return f"""
    SELECT MIN(pr.name) || ' (' || MIN(pr.sku) || ')' AS key, SUM(l.quantity) AS units,
           COUNT(DISTINCT l.purchase_id) AS orders, SUM(l.line_total) AS revenue, MIN(l.unit_price) AS min_price,
           {q.div("SUM(l.line_total)", "SUM(l.quantity)")} AS avg_price, MAX(l.unit_price) AS max_price
      FROM purchase_line l JOIN purchase p ON p.id = l.purchase_id JOIN product pr ON pr.id = l.product_id
     WHERE {q.range("p.purchased_at")} AND p.currency = 'USD'
     GROUP BY l.product_id"""


def touches(dialect: str, start: Range, end: Range) -> str:
    q = SQL(dialect, start, end)
    at = "+t.occurred_at" if dialect == "sqlite" else "t.occurred_at"  # SQLite: read (contact, kind, time) alone
    return f"""
    WITH converted AS (
      SELECT contact_id, MIN(occurred_at) AS converted_at FROM lifecycle_change WHERE to_stage = 'customer'
       GROUP BY contact_id HAVING {q.range("MIN(occurred_at)")}
    ), per_contact AS (
      SELECT v.contact_id, v.converted_at, COUNT(t.id) AS touches, MIN(t.occurred_at) AS first_at
        FROM converted v LEFT JOIN touchpoint t ON t.contact_id = v.contact_id AND {at} <= v.converted_at
         AND t.kind NOT IN ('impression', 'conversion')
       GROUP BY v.contact_id, v.converted_at
    )
    SELECT CASE WHEN touches >= 21 THEN '21+' WHEN touches >= 11 THEN '11-20' WHEN touches >= 6 THEN '6-10'
                ELSE CAST(touches AS TEXT) END AS key,
           COUNT(*) AS customers, {q.ratio("COUNT(*)", "SUM(COUNT(*)) OVER ()")} AS share,
           AVG(touches) AS avg_touches, AVG({q.days("converted_at", "first_at")}) AS avg_days
      FROM per_contact GROUP BY 1"""


def roi(dialect: str, start: Range, end: Range) -> str:
    q = SQL(dialect, start, end)

    def credited(order: str) -> str:
        return f"""(SELECT t.id FROM touchpoint t WHERE t.contact_id = n.contact_id AND t.kind IN {CREDITABLE}
                    AND t.occurred_at <= n.purchased_at ORDER BY t.occurred_at {order}, t.id {order} LIMIT 1)"""

    return f"""
    WITH numbered AS (
      SELECT contact_id, purchased_at, total, currency,
             ROW_NUMBER() OVER (PARTITION BY contact_id ORDER BY purchased_at) AS nth FROM purchase
    ), events AS (
      SELECT total, CASE WHEN nth = 1 THEN 1 ELSE 0 END AS is_first,
             {credited("ASC")} AS first_id, {credited("DESC")} AS last_id
        FROM numbered n WHERE {q.range("purchased_at")} AND currency = 'USD'
    ), facts AS (
      SELECT campaign AS key, spend AS cost, 0 AS cf, 0 AS rf, 0 AS cl, 0 AS rl FROM ad_spend
       WHERE {q.days_in("day")} AND currency = 'USD'
      UNION ALL
      SELECT COALESCE(t.campaign, t.utm_campaign), 0, e.is_first, e.total, 0, 0
        FROM events e LEFT JOIN touchpoint t ON t.id = e.first_id
      UNION ALL
      SELECT COALESCE(t.campaign, t.utm_campaign), 0, 0, 0, e.is_first, e.total
        FROM events e LEFT JOIN touchpoint t ON t.id = e.last_id
    ), totals AS (
      SELECT key, SUM(cost) AS cost, SUM(cf) AS cf, SUM(rf) AS rf, SUM(cl) AS cl, SUM(rl) AS rl
        FROM facts GROUP BY key
    )
    SELECT key, cost, cf AS customers_first, rf AS revenue_first, {q.ratio("rf - cost", "cost")} AS roi_first,
           {q.div("cost", "cf")} AS cpa_first, cl AS customers_last, rl AS revenue_last,
           {q.ratio("rl - cost", "cost")} AS roi_last, {q.div("cost", "cl")} AS cpa_last
      FROM totals"""


def conversion(dialect: str, start: Range, end: Range) -> str:
    q = SQL(dialect, start, end)
    if dialect == "postgresql":
        # each contact's leads of the range and the stages it reached, in one pass over the contacts merged
        # with their stage history (both in contact order), instead of two random probes per lead
        return f"""
    SELECT key, SUM(leads) AS leads, SUM(CASE WHEN reached_qualified > 0 THEN leads ELSE 0 END) AS qualified,
           SUM(CASE WHEN reached_customer > 0 THEN leads ELSE 0 END) AS customers
      FROM (SELECT c.source AS key,
                   COUNT(*) FILTER (WHERE l.from_stage IS NULL AND l.to_stage = 'lead'
                                      AND {q.range("l.occurred_at")}) AS leads,
                   COUNT(*) FILTER (WHERE l.to_stage IN ('prospect', 'customer')) AS reached_qualified,
                   COUNT(*) FILTER (WHERE l.to_stage = 'customer') AS reached_customer
              FROM contact c JOIN lifecycle_change l ON l.contact_id = c.id
             WHERE l.to_stage IN ('lead', 'prospect', 'customer')
             GROUP BY c.id) AS per_contact
     WHERE leads > 0
     GROUP BY key"""
    # SQLite: "+" keeps the range from choosing (to_stage, occurred_at), which visits leads in random order
    occurred_at = "+l.occurred_at" if dialect == "sqlite" else "l.occurred_at"
    return f"""
    SELECT c.source AS key, COUNT(*) AS leads,
           SUM(CASE WHEN EXISTS (SELECT 1 FROM lifecycle_change x WHERE x.contact_id = l.contact_id
                                    AND x.to_stage IN ('prospect', 'customer')) THEN 1 ELSE 0 END) AS qualified,
           SUM(CASE WHEN EXISTS (SELECT 1 FROM lifecycle_change x WHERE x.contact_id = l.contact_id
                                    AND x.to_stage = 'customer') THEN 1 ELSE 0 END) AS customers
      FROM lifecycle_change l JOIN contact c ON c.id = l.contact_id
     WHERE l.from_stage IS NULL AND l.to_stage = 'lead' AND {q.range(occurred_at)}
     GROUP BY c.source"""


def _with_rates(dialect: str, inner: str) -> str:
    q = SQL(dialect, None, None)
    return f"""SELECT key, leads, qualified, customers, {q.ratio("qualified", "leads")} AS qualification_rate,
               {q.ratio("customers", "leads")} AS conversion_rate FROM ({inner}) AS counted"""


def cycle(dialect: str, start: Range, end: Range) -> str:
    q = SQL(dialect, start, end)
    days = q.days("v.converted_at", "c.created_at")
    return f"""
    WITH converted AS (
      SELECT contact_id, MIN(occurred_at) AS converted_at FROM lifecycle_change WHERE to_stage = 'customer'
       GROUP BY contact_id HAVING {q.range("MIN(occurred_at)")}
    )
    SELECT {q.month("v.converted_at")} AS key, COUNT(*) AS customers, AVG({days}) AS avg_days,
           MIN({days}) AS min_days, MAX({days}) AS max_days
      FROM converted v JOIN contact c ON c.id = v.contact_id GROUP BY 1"""


def pipeline(dialect: str, start: Range, end: Range) -> str:
    q = SQL(dialect, start, end)
    return f"""
    SELECT s.name AS key, COUNT(o.id) AS opportunities, COALESCE(SUM(o.amount), 0) AS amount,
           COALESCE(SUM(o.amount * s.probability / 100), 0) AS weighted_amount,
           AVG({q.days(q.now(), "o.created_at")}) AS avg_age_days
      FROM pipeline_stage s
      LEFT JOIN opportunity o ON o.stage_id = s.id AND o.status = 'open' AND o.currency = 'USD'
                             AND {q.range("o.created_at")}
     WHERE s.pipeline_id = (SELECT id FROM pipeline WHERE is_default) AND s.outcome = 'open'
     GROUP BY s.id, s.name"""


def win_rate(dialect: str, start: Range, end: Range) -> str:
    q = SQL(dialect, start, end)
    won_amount = "CASE WHEN status = 'won' AND currency = 'USD' THEN amount END"
    return f"""
    SELECT {q.month("closed_at")} AS key, SUM(CASE WHEN status = 'won' THEN 1 ELSE 0 END) AS won,
           SUM(CASE WHEN status = 'lost' THEN 1 ELSE 0 END) AS lost,
           {q.ratio("SUM(CASE WHEN status = 'won' THEN 1 ELSE 0 END)", "COUNT(*)")} AS win_rate,
           COALESCE(SUM({won_amount}), 0) AS won_amount, AVG({won_amount}) AS avg_deal,
           AVG(CASE WHEN status = 'won' THEN {q.days("closed_at", "created_at")} END) AS avg_days_to_win
      FROM opportunity WHERE status IN ('won', 'lost') AND closed_at IS NOT NULL AND {q.range("closed_at")}
     GROUP BY 1"""


def reps(dialect: str, start: Range, end: Range) -> str:
    q = SQL(dialect, start, end)
    return f"""
    WITH facts AS (
      SELECT owner_id AS user_id, 1 AS leads, 0 AS won, 0 AS won_amount, 0 AS revenue, NULL AS cycle_days,
             0 AS activities, 0 AS interactions
        FROM contact WHERE {q.range("created_at")} AND merged_into_id IS NULL
      UNION ALL
      SELECT owner_id, 0, 1, CASE WHEN currency = 'USD' THEN amount ELSE 0 END, 0,
             {q.days("closed_at", "created_at")}, 0, 0
        FROM opportunity WHERE status = 'won' AND {q.range("closed_at")}
      UNION ALL
      SELECT rep_id, 0, 0, 0, total, NULL, 0, 0 FROM purchase WHERE {q.range("purchased_at")} AND currency = 'USD'
      UNION ALL
      SELECT owner_id, 0, 0, 0, 0, NULL, 1, 0 FROM activity WHERE done_at IS NOT NULL AND {q.range("done_at")}
      UNION ALL
      SELECT user_id, 0, 0, 0, 0, NULL, 0, 1 FROM interaction WHERE {q.range("occurred_at")}
    )
    SELECT MIN(u.name) AS key, SUM(leads) AS leads, SUM(won) AS won, SUM(won_amount) AS won_amount,
           SUM(revenue) AS revenue, AVG(cycle_days) AS avg_cycle_days, SUM(activities) AS activities,
           SUM(interactions) AS interactions
      FROM facts f LEFT JOIN crm_user u ON u.id = f.user_id GROUP BY f.user_id"""


def forecast(dialect: str, start: Range, end: Range) -> str:
    q = SQL(dialect, start, end)
    return f"""
    SELECT {q.month("o.expected_close_on", is_date=True)} AS key, COUNT(*) AS opportunities, SUM(o.amount) AS amount,
           SUM(o.amount * s.probability / 100) AS weighted_amount
      FROM opportunity o JOIN pipeline_stage s ON s.id = o.stage_id
     WHERE o.status = 'open' AND o.currency = 'USD' AND {q.days_in("o.expected_close_on")}
     GROUP BY 1"""


HAND_WRITTEN: dict[str, Callable[[str, Range, Range], str]] = {
    "marketing.ads": ads,
    "marketing.affiliates": affiliates,
    "marketing.channels": channels,
    "marketing.demographics": demographics,
    "marketing.products": products,
    "marketing.touches": touches,
    "marketing.roi": roi,
    "sales.conversion": lambda d, s, e: _with_rates(d, conversion(d, s, e)),
    "sales.cycle": cycle,
    "sales.pipeline": pipeline,
    "sales.win_rate": win_rate,
    "sales.reps": reps,
    "sales.forecast": forecast,
}
