"""The byte-level tokenizer of the embedded server's tiny models (the shared one, re-exported).

It lives in ``tinkex_actors.types.byte_tokenizer`` because the client uses it too; the
server's modules keep importing it from here.
"""

from __future__ import annotations

from tinkex_actors.types.byte_tokenizer import (
    BOS_TOKEN_ID,
    BYTE_VOCAB_SIZE,
    EOS_TOKEN_ID,
    HF_TOKENIZER_DIR,
    ByteTokenizer,
    build_hf_tokenizer_json,
    hf_tokenizer_config,
    write_hf_tokenizer,
)

__all__ = [
    "BOS_TOKEN_ID",
    "BYTE_VOCAB_SIZE",
    "EOS_TOKEN_ID",
    "HF_TOKENIZER_DIR",
    "ByteTokenizer",
    "build_hf_tokenizer_json",
    "hf_tokenizer_config",
    "write_hf_tokenizer",
]
