"""Writes the two data tables that make the tokenizer agree with scikit-learn.

* `english_stop_words.txt`: scikit-learn's `ENGLISH_STOP_WORDS` (the Glasgow Information
  Retrieval Group list, BSD-licensed as part of scikit-learn), one word per line, sorted.
* `python_word_ranges.txt`: the code points that Python's `re` matches with `\\w`
  (Unicode mode), as inclusive hexadecimal ranges `start end`, one per line.
  Python's `\\w` is `str.isalnum() or '_'`, which differs from Rust's `regex` `\\w`
  (that one adds combining marks, connector punctuation and join controls), so the
  default token pattern `(?u)\\b\\w\\w+\\b` is implemented from this table instead.

Run: `python3 crates/verdict-baseline/data/make_data.py` (needs scikit-learn).
"""

import re
import sys
import unicodedata
from pathlib import Path

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

here = Path(__file__).resolve().parent

(here / "english_stop_words.txt").write_text(
    "".join(word + "\n" for word in sorted(ENGLISH_STOP_WORDS))
)

word = re.compile(r"\w")
ranges = []
start = None
for code in range(0x110000):
    is_word = not (0xD800 <= code <= 0xDFFF) and word.match(chr(code)) is not None
    if is_word and start is None:
        start = code
    if not is_word and start is not None:
        ranges.append((start, code - 1))
        start = None
if start is not None:
    ranges.append((start, 0x10FFFF))

header = (
    f"# Python {sys.version.split()[0]} re \\w, Unicode {unicodedata.unidata_version}; "
    "inclusive ranges\n"
)
(here / "python_word_ranges.txt").write_text(
    header + "".join(f"{a:x} {b:x}\n" for a, b in ranges)
)
print(f"{len(ENGLISH_STOP_WORDS)} stop words, {len(ranges)} word ranges")
