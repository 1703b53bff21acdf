#!/usr/bin/env python3
"""Make a training query from a `cleanroom query-init` skeleton (the demo's helper).

Usage: training-query.py SKELETON.toml OUT.toml LABEL Q SIGMA STEPS BATCH LR EVAL_EPSILON

Keeps the skeleton's identity fields (job, collaborator, dataset, module, inputs), replaces
its outputs by one DP evaluation output (the trained model's AUC against LABEL), and adds
a [training] table. The deadline is set afterwards from `cleanroom query check`.
"""
import sys
import tomllib

skeleton, out, label, q, sigma, steps, batch, lr, eval_eps = sys.argv[1:10]
spec = tomllib.load(open(skeleton, "rb"))


def s(v):
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


lines = [
    f"job_id = {s(spec['job_id'])}",
    f"collaborator = {s(spec['collaborator'])}",
    f"dataset_digest = {s(spec['dataset_digest'])}",
    f"module_hash = {s(spec['module_hash'])}",
    "inputs = [" + ", ".join(s(i) for i in spec["inputs"]) + "]",
    f"deadline_ms = {spec['deadline_ms']}",
    "",
    "[[outputs]]",
    'kind = "auc"',
    'name = "auc_after_fine_tuning"',
    f"label = {s(label)}",
    "bins = 100",
    f"epsilon = {s(eval_eps)}",
    "",
    "[training]",
    f"label = {s(label)}",
    f"sample_rate = {s(q)}",
    f"noise_multiplier = {s(sigma)}",
    'clip_norm = "1"',
    f"steps = {int(steps)}",
    f"expected_batch_size = {int(batch)}",
    'delta = "0.000001"',
    "",
    "[training.optimizer]",
    'kind = "adam"',
    f"learning_rate = {s(lr)}",
]
open(out, "w").write("\n".join(lines) + "\n")
