"""A task's memory (DESIGN §3: the past) and how it is searched. Pure rules, no I/O.

Search ranks with pg_trgm's `word_similarity(query, text)`: the best match of the query's
trigrams against any contiguous extent of the text, so a short query scores high against a long
summary that contains it (`similarity` compares whole strings and punishes long texts;
`strict_word_similarity` needs the extent to fall on word boundaries). Ties go to the higher
`similarity`: the text where the query is a larger share.

pg_trgm splits text into words at non-alphanumeric characters and pads every word, and Chinese
(Japanese, Korean) is written without spaces: a whole sentence becomes one word, and a two- or
three-character query's padded trigrams never match inside it. So both the stored text and the
query are normalised the same way first: NFKC, lower case, and every run of CJK characters
written as its overlapping bigrams separated by spaces ("向量数据库" → "向量 量数 数据 据库"), as
CJK search engines tokenise. A query then matches whole bigram "words" wherever they are.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from nexus.kit.protos import etag

MAX_SUMMARY_CHARS = 20_000
MAX_TAKEAWAYS = 100
MAX_TAKEAWAY_CHARS = 2000
MAX_VECTOR_DOC_ID_CHARS = 200
MAX_QUERY_CHARS = 200
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Results need at least this word similarity (pg_trgm.word_similarity_threshold for `%>`).
MIN_SCORE = 0.3

# Han (with extensions and compatibility ideographs), kana, Hangul syllables.
_CJK = re.compile(
    "[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]+"
)


@dataclass(frozen=True, slots=True)
class Memory:
    task_id: str
    summary_text: str
    key_takeaways: tuple[str, ...]
    vector_doc_id: str | None
    version: int  # 0: never written
    updated_at: Any = None

    @property
    def etag(self) -> str:
        return etag(self.version)


@dataclass(frozen=True, slots=True)
class Hit:
    memory: Memory
    score: float
    tiebreak: float
    task_title: str
    task_is_archived: bool


def _bigrams(match: re.Match[str]) -> str:
    run = match.group(0)
    if len(run) == 1:
        return f" {run} "
    return " " + " ".join(run[i : i + 2] for i in range(len(run) - 1)) + " "


def search_text(text: str) -> str:
    """`text` as trigram search sees it (used for both the stored text and the query)."""
    normal = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_CJK.sub(_bigrams, normal).split())


def document(summary: str, takeaways: tuple[str, ...]) -> str:
    """What a memory is searched by: its summary and takeaways, one per line."""
    return search_text("\n".join([summary, *takeaways]))
