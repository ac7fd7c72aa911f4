#!/usr/bin/python3
"""configs.py — the GPT configurations of the parameter-golf family, with proteus.nn's key names.

    /usr/bin/python3 tests/reference/configs.py            # list the configs as JSON
    /usr/bin/python3 tests/reference/configs.py --lua      # the same as a Lua chunk (`return {...}`)

Every config is a dict of overrides on DEFAULTS (the baseline, spec parameter-golf.md §2.1); the keys are
exactly those of `nn.gpt_defaults` in lua/lib/proteus/nn.lua, so a config here and the table given to
nn.GPT are the same thing. Sources: baseline §2.1, PROTEUS v9 §3.1–3.3, #1539 §4.1–4.2, #598 §5.1–5.2.
Used by gpt_ref.py and param_counts.py; tests/lua/test_gpt_parity.lua checks that these configs are
equal to the ones in tests/lua/gpt_configs.lua (`--lua` output), so the two sides cannot drift.
Layer indices (xsa_layers, ve_layers, parallel_start, recurrence_layers) are 0-based physical layers, as
in the spec.
"""
import json
import sys

# Defaults = the challenge baseline (§2.1); mirrors nn.gpt_defaults (nil values are None here).
DEFAULTS = {
    "vocab_size": 1024,
    "num_layers": 9,
    "model_dim": 512,
    "num_heads": 8,
    "num_kv_heads": 4,
    "mlp_mult": 2,
    "mlp_hidden": None,
    "mlp_act": "relu2",
    "tie_embeddings": True,
    "tied_embed_init_std": 0.005,
    "rope_base": 10000,
    "rope_dims": None,
    "rope_train_seq_len": None,
    "logit_softcap": 30,
    "qk_gain_init": 1.5,
    "rms_eps": 1.1920929e-07,
    "init": "default",
    "depth_scale": False,
    "ln_scale": False,
    "skip_mode": "plain",
    "bigram_vocab_size": 0,
    "bigram_dim": 128,
    "smear_gate": False,
    "xsa_layers": [],
    "ve_dim": 0,
    "ve_layers": [],
    "ve_init_std": 0.01,
    "parallel_start": None,
    "recurrence_layers": None,
    "recurrence": False,
}

# PROTEUS v9 (§3.1–3.3) as it ran: no XSA code in the file.
_PROTEUS_V9 = {
    "num_layers": 11,
    "mlp_hidden": 1536,
    "rope_base": 50000,
    "rope_train_seq_len": 1024,
    "init": "orthogonal",
    "depth_scale": True,
    "bigram_vocab_size": 2048,
    "bigram_dim": 128,
    "smear_gate": True,
}

# #1539 (§4.1–4.2): the run command VOCAB_SIZE=8192 BIGRAM_VOCAB_SIZE=0 VE_DIM=44, SIGMOID_SKIPS=0.
_PR1539 = {
    "vocab_size": 8192,
    "num_layers": 11,
    "mlp_mult": 4,
    "mlp_act": "leaky_relu2",
    "rope_dims": 16,
    "rope_train_seq_len": 1024,
    "qk_gain_init": 5.25,
    "init": "orthogonal",
    "ln_scale": True,
    "skip_mode": "plain",
    "smear_gate": True,
    "xsa_layers": list(range(11)),
    "ve_dim": 44,
    "ve_layers": [9, 10],
    "parallel_start": 7,
    "recurrence_layers": [3, 4, 5],
    "recurrence": False,
}

CONFIGS = {
    "baseline": {},
    "proteus_v9": dict(_PROTEUS_V9),
    # the seed card / README variant: "XSA on last 4 layers" (§3.1, §9.1)
    "proteus_v9_xsa": dict(_PROTEUS_V9, xsa_layers=[7, 8, 9, 10]),
    "pr1539": dict(_PR1539),
    # depth recurrence switched on (from step 3000 in the run): 14 virtual layers
    "pr1539_recur": dict(_PR1539, recurrence=True),
    # #598 (§5.1–5.2)
    "pr598": {
        "num_layers": 11,
        "mlp_hidden": 1536,
        "mlp_act": "star_relu",
        "rope_dims": 16,
        "rope_train_seq_len": 1024,
        "init": "orthogonal",
        "ln_scale": True,
        "skip_mode": "gated",
        "xsa_layers": [7, 8, 9, 10],
        "ve_dim": 128,
        "ve_layers": [9, 10],
        "bigram_vocab_size": 2048,
        "bigram_dim": 128,
        "smear_gate": True,
    },
}

# the parameter counts in the submissions' logs (spec §2.1, §3.1, §4, §5.1)
EXPECTED_PARAMS = {
    "baseline": 17059912,
    "proteus_v9": 26829913,
    "proteus_v9_xsa": 26829913,
    "pr1539": 36311132,
    "pr1539_recur": 36311132,
    "pr598": 27030108,
}


def full_config(name, overrides=None):
    """DEFAULTS + CONFIGS[name] + overrides, with the derived values filled (as nn.gpt_config)."""
    if name not in CONFIGS:
        raise KeyError("configs.py: unknown config '%s' (known: %s)" % (name, ", ".join(sorted(CONFIGS))))
    c = dict(DEFAULTS)
    for src in (CONFIGS[name], overrides or {}):
        for k, v in src.items():
            if k not in DEFAULTS:
                raise KeyError("configs.py: unknown config key '%s' in %s" % (k, name))
            c[k] = v
    if c["model_dim"] % c["num_heads"] != 0:
        raise ValueError("num_heads=%d does not divide model_dim=%d" % (c["num_heads"], c["model_dim"]))
    if c["num_heads"] % c["num_kv_heads"] != 0:
        raise ValueError("num_kv_heads=%d does not divide num_heads=%d" % (c["num_kv_heads"], c["num_heads"]))
    c["head_dim"] = c["model_dim"] // c["num_heads"]
    if c["rope_dims"] is None:
        c["rope_dims"] = c["head_dim"]
    if c["mlp_hidden"] is None:
        c["mlp_hidden"] = int(c["mlp_mult"] * c["model_dim"])
    return c


def _lua(v):
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "{" + ", ".join(_lua(x) for x in v) + "}"
    raise TypeError("configs.py: cannot write %r as Lua" % (v,))


def to_lua():
    lines = ["return {"]
    for name in sorted(CONFIGS):
        items = ", ".join("%s = %s" % (k, _lua(v)) for k, v in sorted(CONFIGS[name].items()))
        lines.append("  %s = { %s }," % (name, items))
    lines.append("}")
    return "\n".join(lines)


if __name__ == "__main__":
    if "--lua" in sys.argv[1:]:
        print(to_lua())
    else:
        print(json.dumps(CONFIGS, indent=1, sort_keys=True))
