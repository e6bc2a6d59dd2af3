"""Nothing the project loads may reach for the network: check it in a process with none."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = r"""
import socket
def refuse(*args, **kwargs):
    raise OSError("network disabled in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

import index  # registers the offline cl100k_base
import tiktoken
assert tiktoken.get_encoding("cl100k_base").encode("Made in China 2025") == [41581, 304, 5734, 220, 2366, 20]
from langchain_text_splitters import RecursiveCharacterTextSplitter
splitter = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
    encoding_name="cl100k_base", chunk_size=5, chunk_overlap=0)
assert len(splitter.split_text("one two three four five six seven eight nine ten eleven")) >= 2
from index.embedding import Embedder
vector = Embedder().encode(["semiconductor self-sufficiency"])
assert vector.shape == (1, 384)
print("offline ok")
"""


def test_tokenizer_and_embedder_load_with_no_network():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("TIKTOKEN_CACHE_DIR", None)
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "offline ok" in result.stdout
