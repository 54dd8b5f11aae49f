"""The knowledge base: articles and FAQ entries, drafts and versions, full-text search, votes.

Search uses each database's own engine behind one API: an FTS5 table ranked
by BM25 on SQLite, a ``tsvector`` table with a GIN index ranked by
``ts_rank`` on PostgreSQL, a FULLTEXT index on MariaDB. The index tables are
made by the migration and kept in step by this service in the same
transaction as the article.
"""

from __future__ import annotations

import builtins
import re
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import func, select, text

from crmcore.errors import NotFound, ValidationError
from crmcore.services.base import Service
from crmcore.validation import clean_text
from crmcore_ticketing.models import (
    FTS_TABLE,
    KbArticle,
    KbCategory,
    KbVersion,
    KbVote,
    Message,
    Ticket,
    TicketArticle,
)

if TYPE_CHECKING:
    from crmcore.context import HookContext

KINDS = ("article", "faq")
MAX_ARTICLE = 200_000
_WORD = re.compile(r"\w+", re.UNICODE)
#: Words that say nothing about a ticket's topic (suggestions search with OR).
_STOPWORDS_TEXT = (
    "a an and are as at be but by can could do does for from have hello hi how i if in is it its me my no not of "
    "on or our please so thanks thank that the their them then there this to us was we what when where which who "
    "why will with would you your"
)
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


@attrs.frozen
class Hit:
    """A search result: the article and its rank (higher is better)."""

    article: KbArticle
    score: float


def slugify(title: str) -> str:
    """``"Reset your password!"`` → ``"reset-your-password"``."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:120] or "article"


def get_article(ctx: HookContext, ref: int | str) -> KbArticle:
    """An article by id or slug; NotFound otherwise."""
    found = (
        ctx.session.get(KbArticle, int(ref))
        if isinstance(ref, int) or str(ref).isdigit()
        else ctx.first(KbArticle, KbArticle.slug == str(ref).strip().lower())
    )
    if found is None:
        raise NotFound(f"no knowledge-base article {ref!r}")
    return found


def terms(query: str, *, drop_stopwords: bool = False, limit: int = 30) -> builtins.list[str]:
    """The distinct words of *query*, lower-cased (only letters, digits, underscores survive)."""
    seen: builtins.list[str] = []
    for word in _WORD.findall((query or "").lower()):
        if len(word) < 2 or (drop_stopwords and word in STOPWORDS) or word in seen:
            continue
        seen.append(word)
        if len(seen) >= limit:
            break
    return seen


# -- the per-database index -------------------------------------------------------------


def _dialect(ctx: HookContext) -> str:
    name = ctx.session.get_bind().dialect.name
    return "mysql" if name in ("mysql", "mariadb") else name


def index_article(ctx: HookContext, article: KbArticle) -> None:
    """Write *article*'s title and body to the full-text index (replacing what was there)."""
    params = {"id": article.id, "title": article.title, "body": article.body}
    dialect = _dialect(ctx)
    if dialect == "sqlite":
        ctx.session.execute(text(f"DELETE FROM {FTS_TABLE} WHERE rowid = :id"), {"id": article.id})
        ctx.session.execute(text(f"INSERT INTO {FTS_TABLE} (rowid, title, body) VALUES (:id, :title, :body)"), params)
    elif dialect == "postgresql":
        params["lang"] = ctx.crm.plugin_setting("ticketing", "search_language")
        ctx.session.execute(
            text(
                f"INSERT INTO {FTS_TABLE} (article_id, document) VALUES (:id, "
                "setweight(to_tsvector(CAST(:lang AS regconfig), :title), 'A') || "
                "setweight(to_tsvector(CAST(:lang AS regconfig), :body), 'B')) "
                "ON CONFLICT (article_id) DO UPDATE SET document = EXCLUDED.document"
            ),
            params,
        )
    else:
        ctx.session.execute(
            text(f"REPLACE INTO {FTS_TABLE} (article_id, title, body) VALUES (:id, :title, :body)"), params
        )


def search_ids(
    ctx: HookContext, words: builtins.list[str], *, match_all: bool, limit: int
) -> builtins.list[tuple[int, float]]:
    """Article ids matching *words* (all of them, or any), best first, with a score (higher is better)."""
    dialect = _dialect(ctx)
    if dialect == "mysql":
        words = [w for w in words if len(w) >= 3]  # InnoDB's default smallest indexed token
    if not words:
        return []
    if dialect == "sqlite":
        expression = (" AND " if match_all else " OR ").join(f'"{w}"' for w in words)
        rows = ctx.session.execute(
            text(
                f"SELECT rowid, bm25({FTS_TABLE}, 10.0, 1.0) AS rank FROM {FTS_TABLE} "
                f"WHERE {FTS_TABLE} MATCH :q ORDER BY rank LIMIT :n"
            ),
            {"q": expression, "n": limit},
        ).all()
        return [(int(r[0]), -float(r[1])) for r in rows]
    if dialect == "postgresql":
        expression = (" & " if match_all else " | ").join(words)
        rows = ctx.session.execute(
            text(
                f"SELECT f.article_id, ts_rank(f.document, q) AS rank FROM {FTS_TABLE} f, "
                "to_tsquery(CAST(:lang AS regconfig), :q) q WHERE f.document @@ q ORDER BY rank DESC LIMIT :n"
            ),
            {"q": expression, "n": limit, "lang": ctx.crm.plugin_setting("ticketing", "search_language")},
        ).all()
        return [(int(r[0]), float(r[1])) for r in rows]
    boolean = " ".join(f"+{w}" if match_all else w for w in words)
    rows = ctx.session.execute(
        text(
            f"SELECT article_id, MATCH (title, body) AGAINST (:plain) AS score FROM {FTS_TABLE} "
            "WHERE MATCH (title, body) AGAINST (:q IN BOOLEAN MODE) ORDER BY score DESC LIMIT :n"
        ),
        {"q": boolean, "plain": " ".join(words), "n": limit},
    ).all()
    return [(int(r[0]), float(r[1])) for r in rows]


# -- the service ----------------------------------------------------------------------------


class KnowledgeBase(Service):
    """Articles, FAQ entries, search and votes: ``ticketing(crm).kb``."""

    def add(
        self,
        title: str,
        body: str,
        *,
        kind: str = "article",
        category: str | None = None,
        slug: str | None = None,
        publish: bool = False,
        actor: Any = None,
    ) -> KbArticle:
        """Add an article (or a FAQ entry: title = question, body = answer), as a draft by default."""
        values = self._clean(title, body, kind, category)
        with self.crm.transaction(actor) as ctx:
            base = slugify(slug or values["title"])
            candidate, n = base, 1
            while ctx.first(KbArticle, KbArticle.slug == candidate) is not None:
                n += 1
                candidate = f"{base}-{n}"
            article = KbArticle(
                slug=candidate, title=values["title"], body=values["body"], kind=values["kind"],
                category_id=self._category(ctx, values["category"]), status="draft", version=1,
                helpful_yes=0, helpful_no=0, created_at=ctx.now, updated_at=ctx.now,
            )  # fmt: skip
            ctx.session.add(article)
            ctx.session.flush()
            ctx.session.add(KbVersion(article_id=article.id, version=1, title=article.title, body=article.body,
                                      actor=ctx.actor.label, created_at=ctx.now))  # fmt: skip
            if publish:
                article.status, article.published_at = "published", ctx.now
            index_article(ctx, article)
            ctx.audit("ticketing.kb.add", "ticketing_kb_article", article.id, {"slug": article.slug})
            return article

    @staticmethod
    def _clean(title: Any, body: Any, kind: Any, category: Any) -> dict[str, Any]:
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        checks: tuple[tuple[str, Callable[[], str | None]], ...] = (
            ("title", lambda: clean_text(title, "title", 255, required=True)),
            ("category", lambda: clean_text(category, "category", 120)),
        )
        for field, check in checks:
            try:
                values[field] = check()
            except ValidationError as exc:
                errors.update(exc.errors)
        if not isinstance(body, str) or not body.strip():
            errors["body"] = "is required"
        elif len(body) > MAX_ARTICLE:
            errors["body"] = f"is longer than {MAX_ARTICLE:,} characters"
        values["body"] = body.strip() if isinstance(body, str) else ""
        if kind not in KINDS:
            errors["kind"] = f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}"
        values["kind"] = kind
        if errors:
            raise ValidationError(errors)
        return values

    @staticmethod
    def _category(ctx: HookContext, name: str | None) -> int | None:
        if not name:
            return None
        row: KbCategory | None = ctx.first(KbCategory, KbCategory.name == name)
        if row is None:
            row = KbCategory(name=name)
            ctx.session.add(row)
            ctx.session.flush()
        return row.id

    def update(
        self, ref: int | str, *, title: str | None = None, body: str | None = None, category: str | None = None,
        actor: Any = None,
    ) -> KbArticle:  # fmt: skip
        """Save a new version of an article's text (published ones stay published)."""
        with self.crm.transaction(actor) as ctx:
            article = get_article(ctx, ref)
            values = self._clean(title or article.title, body or article.body, article.kind, category)
            article.title, article.body = values["title"], values["body"]
            if category is not None:
                article.category_id = self._category(ctx, values["category"])
            article.version += 1
            article.updated_at = ctx.now
            ctx.session.add(KbVersion(article_id=article.id, version=article.version, title=article.title,
                                      body=article.body, actor=ctx.actor.label, created_at=ctx.now))  # fmt: skip
            index_article(ctx, article)
            ctx.audit("ticketing.kb.update", "ticketing_kb_article", article.id, {"version": article.version})
            return article

    def publish(self, ref: int | str, *, published: bool = True, actor: Any = None) -> KbArticle:
        """Publish an article (its public page appears), or take it back to draft."""
        with self.crm.transaction(actor) as ctx:
            article = get_article(ctx, ref)
            article.status = "published" if published else "draft"
            article.published_at = ctx.now if published else None
            article.updated_at = ctx.now
            ctx.audit("ticketing.kb.publish" if published else "ticketing.kb.unpublish", "ticketing_kb_article",
                      article.id, {})  # fmt: skip
            return article

    def get(self, ref: int | str) -> KbArticle:
        """One article by id or slug."""
        with self.crm.transaction() as ctx:
            return get_article(ctx, ref)

    def category_name(self, article: KbArticle) -> str | None:
        """The name of an article's category."""
        if article.category_id is None:
            return None
        with self.crm.transaction() as ctx:
            row = ctx.session.get(KbCategory, article.category_id)
            return row.name if row else None

    def list(self, *, status: str | None = None, kind: str | None = None) -> builtins.list[KbArticle]:
        """Articles by title; filtered by status (draft, published) and kind (article, faq)."""
        with self.crm.transaction() as ctx:
            query = select(KbArticle).order_by(KbArticle.title)
            if status:
                query = query.where(KbArticle.status == status)
            if kind:
                query = query.where(KbArticle.kind == kind)
            return list(ctx.session.scalars(query))

    def versions(self, ref: int | str) -> builtins.list[KbVersion]:
        """Every saved version of an article, oldest first."""
        with self.crm.transaction() as ctx:
            article = get_article(ctx, ref)
            return list(ctx.session.scalars(
                select(KbVersion).where(KbVersion.article_id == article.id).order_by(KbVersion.version)))  # fmt: skip

    def search(self, query: str, *, limit: int = 10, include_drafts: bool = False) -> builtins.list[Hit]:
        """Full-text search: articles with all the words first; if none, with any of them."""
        words = terms(query)
        with self.crm.transaction() as ctx:
            return self._search_in(ctx, words, limit, include_drafts, match_all=True) or self._search_in(
                ctx, words, limit, include_drafts, match_all=False
            )

    def _search_in(
        self, ctx: HookContext, words: builtins.list[str], limit: int, include_drafts: bool, *, match_all: bool
    ) -> builtins.list[Hit]:
        found = search_ids(ctx, words, match_all=match_all, limit=limit * 3 + 10)
        if not found:
            return []
        articles = {
            a.id: a for a in ctx.session.scalars(select(KbArticle).where(KbArticle.id.in_([i for i, _ in found])))
        }
        hits = [Hit(articles[i], score) for i, score in found if i in articles]
        if not include_drafts:
            hits = [h for h in hits if h.article.status == "published"]
        return hits[:limit]

    def suggest(self, ticket: int | str, *, limit: int = 5) -> builtins.list[Hit]:
        """Published articles that may answer a ticket, from its subject and first message."""
        from crmcore_ticketing.tickets import get_ticket

        with self.crm.transaction() as ctx:
            row: Ticket = get_ticket(ctx, ticket)
            first = ctx.session.scalars(
                select(Message.body).where(Message.ticket_id == row.id).order_by(Message.id).limit(1)
            ).first()
            words = terms(f"{row.subject} {first or ''}", drop_stopwords=True, limit=20)
            return self._search_in(ctx, words, limit, False, match_all=False)

    def vote(self, ref: int | str, *, helpful: bool) -> KbArticle:
        """Record a "was this helpful?" answer on a published article."""
        with self.crm.transaction() as ctx:
            article = get_article(ctx, ref)
            if article.status != "published":
                raise NotFound(f"no published article {ref!r}")
            ctx.session.add(KbVote(article_id=article.id, helpful=helpful, created_at=ctx.now))
            if helpful:
                article.helpful_yes += 1
            else:
                article.helpful_no += 1
            return article

    def tickets_using(self, ref: int | str) -> builtins.list[int]:
        """Ids of the tickets an article was used on."""
        with self.crm.transaction() as ctx:
            article = get_article(ctx, ref)
            return list(
                ctx.session.scalars(select(TicketArticle.ticket_id).where(TicketArticle.article_id == article.id))
            )

    def count(self) -> int:
        """How many articles exist."""
        with self.crm.transaction() as ctx:
            return int(ctx.scalar(select(func.count()).select_from(KbArticle)) or 0)
