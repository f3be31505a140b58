"""A byte-bounded, thread-safe cache of word-piece ids by text, shared by the API's worker threads.

Ids are stored as ``array('i')`` (4 bytes an id), so the bound is a real memory bound: a cached text costs
its ids, the array's header and the key string (`entry_bytes`). The least recently used texts are evicted
first. A caller gets its ids from the values it looked up or computed itself, never by reading the cache a
second time, so another thread's eviction can never make a lookup fail.
"""

from __future__ import annotations

import sys
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence

DEFAULT_MAX_BYTES = 64 * 2**20  # 64 MiB: about 17,700 SciFact abstracts at 3.8 KB each (benchmarks/token_cache.py)


def entry_bytes(text: str, ids: array) -> int:
    """Bytes one cached text holds: its key string, its id array (header and items) and the dict slot."""
    return sys.getsizeof(text) + sys.getsizeof(ids) + 100


class TokenCache:
    """``get_many(texts, tokenize)``: ids of each text, tokenizing only the texts not cached.

    `max_bytes` bounds `bytes_used` (>= 0; 0 caches nothing). Safe to call from several threads at once.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes_used = 0
        self._entries: OrderedDict[str, tuple[array, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get_many(self, texts: Sequence[str], tokenize: Callable[[list[str]], list[list[int]]]) -> list[array]:
        """Ids of every text of `texts`, in order; `tokenize(missing)` returns one id list per missing text."""
        found: dict[str, array] = {}
        with self._lock:
            for text in texts:
                entry = self._entries.get(text)
                if entry is not None:
                    self._entries.move_to_end(text)
                    found[text] = entry[0]
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            computed = [array("i", ids) for ids in tokenize(missing)]
            if len(computed) != len(missing):
                raise ValueError(f"tokenize returned {len(computed)} id lists for {len(missing)} texts")
            found.update(zip(missing, computed, strict=True))
            with self._lock:
                for text, ids in zip(missing, computed, strict=True):
                    self._put(text, ids)
        return [found[t] for t in texts]

    def _put(self, text: str, ids: array) -> None:
        size = entry_bytes(text, ids)
        if size > self.max_bytes or text in self._entries:
            return
        while self.bytes_used + size > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes_used -= evicted
        self._entries[text] = (ids, size)
        self.bytes_used += size
