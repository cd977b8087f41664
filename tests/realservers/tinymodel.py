"""A tiny LLaMA-architecture model with random weights, written as a GGUF file or a Hugging Face model folder.

Run by the *server's* venv python (it imports nothing from llm_locust), e.g.::

    .venv-llamacpp/bin/python tests/realservers/tinymodel.py gguf  /tmp/tiny.gguf   # needs numpy + gguf
    .venv-vllm/bin/python     tests/realservers/tinymodel.py hf    /tmp/tiny-hf     # needs numpy + tokenizers
                                                                                        #   + safetensors

Both forms are made by the same recipe (numpy, fixed seed: the output is byte-for-byte the same every time; sizes in
:data:`SIZES`) with the same byte-level BPE tokenizer: the 256 GPT-2 byte symbols, 26 merges (space + a lowercase
letter), and two control tokens ``<|bos|>`` and ``<|eos|>``. The chat template (``<|start|>role\\ncontent<|end|>``)
is embedded in both.

**The model never stops early**, so a stream is always exactly ``max_tokens`` long, and it only ever emits ASCII
letters, digits and space+letter tokens: each decodes to complete text on its own, so a server streams every token
as it comes (no half UTF-8 character to hold back, no text that could begin a stop string). How: dimension 0 of
every token embedding is a constant ``C`` and no layer writes to dimension 0 (row 0 of every ``o_proj`` and
``down_proj`` is zero), so after the final RMSNorm that component is always positive. The lm_head row of every
token that must not be generated (EOS, BOS, punctuation, control and non-ASCII bytes) is ``-BIG`` in dimension 0
and zero elsewhere: its logit is about ``-BIG * C``, far below any other token's.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 20251201
HEAD_DIM = 64  # a head size every CPU attention kernel supports
CONTEXT = 2048
RMS_EPS = 1e-5
ROPE_THETA = 10000.0
C = 4.0  # the constant residual component
BIG = 1000.0


@dataclass(frozen=True)
class Size:
    hidden: int
    layers: int
    intermediate: int

    @property
    def heads(self) -> int:
        return self.hidden // HEAD_DIM


#: llama.cpp gets the smallest model that loads. vLLM gets one slow enough (about 10 ms a token on one core) that
#: its Python front end keeps up with its engine: with a faster engine, vLLM's API server falls behind and sends a
#: whole stream in one burst at its end, and no client timing means anything.
SIZES = {"gguf": Size(hidden=128, layers=2, intermediate=256), "hf": Size(hidden=512, layers=4, intermediate=1536)}

BOS, EOS = "<|bos|>", "<|eos|>"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|start|>assistant\n{% endif %}"
)


def byte_symbols() -> list[str]:
    """GPT-2's printable stand-in for each byte value (``bytes_to_unicode``), indexed by byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def vocab() -> tuple[list[str], list[tuple[str, str]], list[bool]]:
    """(tokens by id, merges, allowed-to-generate by id)."""
    sym = byte_symbols()
    space = sym[ord(" ")]
    letters = "abcdefghijklmnopqrstuvwxyz"
    merges = [(space, ch) for ch in letters]
    tokens = sym + [a + b for a, b in merges] + [BOS, EOS]
    ascii_ok = {ord(ch) for ch in letters + letters.upper() + "0123456789"}
    allowed = [b in ascii_ok for b in range(256)] + [True] * len(merges) + [False, False]
    return tokens, merges, allowed


def weights(size: Size) -> dict[str, np.ndarray]:
    """Hugging Face LLaMA tensor names -> float32 arrays, deterministic."""
    tokens, _, allowed = vocab()
    rng = np.random.default_rng(SEED)

    def rand(*shape: int, std: float = 0.05) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    v = len(tokens)
    w: dict[str, np.ndarray] = {}
    embed = rand(v, size.hidden, std=1.0)
    embed[:, 0] = C
    w["model.embed_tokens.weight"] = embed
    for i in range(size.layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = np.ones(size.hidden, np.float32)
        w[p + "post_attention_layernorm.weight"] = np.ones(size.hidden, np.float32)
        w[p + "self_attn.q_proj.weight"] = rand(size.hidden, size.hidden)
        w[p + "self_attn.k_proj.weight"] = rand(size.hidden, size.hidden)
        w[p + "self_attn.v_proj.weight"] = rand(size.hidden, size.hidden)
        o = rand(size.hidden, size.hidden)
        o[0, :] = 0.0
        w[p + "self_attn.o_proj.weight"] = o
        w[p + "mlp.gate_proj.weight"] = rand(size.intermediate, size.hidden)
        w[p + "mlp.up_proj.weight"] = rand(size.intermediate, size.hidden)
        down = rand(size.hidden, size.intermediate)
        down[0, :] = 0.0
        w[p + "mlp.down_proj.weight"] = down
    w["model.norm.weight"] = np.ones(size.hidden, np.float32)
    head = rand(v, size.hidden, std=0.5)
    head[:, 0] = 0.0
    banned = ~np.array(allowed)
    head[banned, :] = 0.0
    head[banned, 0] = -BIG
    w["lm_head.weight"] = head
    return w


def write_gguf(path: Path) -> None:
    import gguf

    tokens, merges, _ = vocab()
    size = SIZES["gguf"]
    w = weights(size)
    tmp = path.with_name(path.name + ".tmp")
    out = gguf.GGUFWriter(str(tmp), "llama")
    out.add_name("tiny-random-llama")
    out.add_context_length(CONTEXT)
    out.add_embedding_length(size.hidden)
    out.add_block_count(size.layers)
    out.add_feed_forward_length(size.intermediate)
    out.add_head_count(size.heads)
    out.add_head_count_kv(size.heads)
    out.add_rope_dimension_count(HEAD_DIM)
    out.add_rope_freq_base(ROPE_THETA)
    out.add_layer_norm_rms_eps(RMS_EPS)
    out.add_vocab_size(len(tokens))
    out.add_file_type(gguf.LlamaFileType.ALL_F32)
    out.add_tokenizer_model("gpt2")
    out.add_tokenizer_pre("default")
    out.add_token_list(tokens)
    normal, control = gguf.TokenType.NORMAL, gguf.TokenType.CONTROL
    out.add_token_types([control if t in (BOS, EOS) else normal for t in tokens])
    out.add_token_merges([f"{a} {b}" for a, b in merges])
    out.add_bos_token_id(tokens.index(BOS))
    out.add_eos_token_id(tokens.index(EOS))
    out.add_add_bos_token(False)
    out.add_chat_template(CHAT_TEMPLATE)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
                 "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
    for name, arr in w.items():
        if name in names:
            gname = names[name]
        else:
            _, _, i, rest = name.split(".", 3)
            gname = f"blk.{i}.{per_layer[rest.removesuffix('.weight')]}.weight"
        out.add_tensor(gname, arr)
    out.write_header_to_file()
    out.write_kv_data_to_file()
    out.write_tensors_to_file()
    out.close()
    tmp.replace(path)


def write_hf(folder: Path) -> None:
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokens, merges, _ = vocab()
    size = SIZES["hf"]
    folder.mkdir(parents=True, exist_ok=True)
    ids = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=ids, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(BOS, special=True), AddedToken(EOS, special=True)])
    tok.save(str(folder / "tokenizer.json"))
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": size.hidden,
        "intermediate_size": size.intermediate, "num_hidden_layers": size.layers, "num_attention_heads": size.heads,
        "num_key_value_heads": size.heads, "head_dim": HEAD_DIM, "max_position_embeddings": CONTEXT,
        "rms_norm_eps": RMS_EPS, "rope_theta": ROPE_THETA, "hidden_act": "silu", "vocab_size": len(tokens),
        "bos_token_id": ids[BOS], "eos_token_id": ids[EOS], "tie_word_embeddings": False,
        "torch_dtype": "float32", "attention_bias": False, "mlp_bias": False,
    }
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS,
        "add_bos_token": False, "add_eos_token": False, "model_max_length": CONTEXT, "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=1))
    (folder / "special_tokens_map.json").write_text(json.dumps({"bos_token": BOS, "eos_token": EOS}))
    save_file(weights(size), str(folder / "model.safetensors"), metadata={"format": "pt"})


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("gguf", "hf"):
        print("usage: tinymodel.py gguf FILE.gguf | hf FOLDER", file=sys.stderr)
        return 2
    (write_gguf if argv[0] == "gguf" else write_hf)(Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
