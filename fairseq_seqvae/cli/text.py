"""Reading the users' text files: UTF-8, one sentence per line."""

from typing import List

from fairseq_seqvae.data.sentence_dataset import LONG_SENTENCE_WORDS as LONG_LINE_WORDS


class NotUTF8Error(ValueError):
    """A file that is not UTF-8 text; the message names the line."""


def decode_lines(data: bytes, name: str) -> List[str]:
    """``data`` split into lines (no line ends); a byte that is not UTF-8 is an error
    naming the line and the column (both from 1) where it sits."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise NotUTF8Error(f"{name} is not UTF-8 text: line {line}, byte {column} "
                           f"(0x{data[e.start]:02x}) cannot be decoded; convert the file "
                           f"to UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    return text.splitlines()


def read_lines(path: str) -> List[str]:
    """The lines of a UTF-8 file (see ``decode_lines``)."""
    with open(path, "rb") as f:
        return decode_lines(f.read(), path)


def long_lines(sentences: List[str], limit: int = LONG_LINE_WORDS) -> List[int]:
    """Positions (from 1) of the sentences with more than ``limit`` words."""
    return [i for i, s in enumerate(sentences, 1) if len(s.split()) > limit]
