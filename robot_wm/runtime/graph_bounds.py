"""What a planner graph may ask of the computer that runs it, checked before onnxruntime builds it.

A planner file's hashes are unkeyed: whoever edits its graph can recompute them. The graph is then any ONNX program,
and the probes sent ones that loop (probe 31), allocate 3 GB in one tensor (probe 34), a thousand tensors of 1.8 MB
summed at once (22 GB, the OOM killer), a chain of 30,000 matrix products (minutes a step), or 1 GiB sparse
initializers onnxruntime densifies at load (probe 35). A robot-wm planner is a fixed-size feed-forward graph: every
tensor's shape is known from its inputs, its work is matrix products and element-wise and reducing operations, and
its size follows from its settings. ``check_graph`` holds a graph to that: its functions inlined, its shapes inferred
(constants propagated), no data-dependent size, no operation outside those kinds, no tensor larger than the step
memory its metadata declares, and its work within the work its metadata declares (both said by every export since
2026-11-29, under its metadata hash). What it returns (the bytes of all
its tensors at once) is checked against this computer's memory by the session."""

from __future__ import annotations

import heapq
import math
import re
from typing import NamedTuple

import numpy as np
import onnx
import onnx.inliner

MAX_WORK_RATIO = 4.0
"""How far the work counted in a graph (``GraphSize.work``) may exceed the ``model_flops_per_step`` its metadata
declares. An export counts 0.5 to 0.7 of it (measured on horizons 5 to 30, 64 to 1,024 samples)."""
MAX_NODES_PER_STEP = 200
"""Nodes a graph may hold per planned step and iteration (horizon x iterations, from its metadata), plus
``MAX_NODES_BASE``: exports hold about 65 (644 at horizon 5 and 2 iterations, with the value). A million one-value
nodes passed the work bound and took onnxruntime minutes and 3 GB to build, before any watchdog (probe 39)."""
MAX_NODES_BASE = 5_000
MAX_NODES = 100_000
"""Nodes any planner may hold, whatever its metadata declares: ``iterations`` forged to 100,000 (hashes recomputed)
lifted the per-step cap, and 100,000 one-value nodes took 40 s and 460 MB to build (probe 40). About 1,500 planned
steps of an export (horizon x iterations; tracing 100 takes 2 minutes): ``export`` refuses a larger one."""
MAX_TENSOR_RATIO = 2.0
"""How far one tensor may exceed the ``planner_memory_bytes`` its metadata declares (an export's largest is 0.2 of it)."""

_PRODUCTS = {"MatMul", "Gemm", "Einsum"}
"""Operations whose work is counted as products (output values x the length summed over)."""
_ALLOWED = {
    # element-wise: each output value from one value of each input
    "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Sigmoid", "Tanh", "Relu", "LeakyRelu", "Elu", "Selu", "Celu",
    "Softplus", "Softsign", "HardSigmoid", "HardSwish", "Mish", "Gelu", "Erf", "Sin", "Cos", "Sign", "Floor", "Ceil",
    "Round", "Not", "IsInf", "IsNaN", "Identity", "Cast", "CastLike", "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max",
    "Min", "Sum", "Mean", "And", "Or", "Xor", "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Where",
    "Clip",
    # reductions along axes, normalisation, ordering
    "ReduceMax", "ReduceMin", "ReduceMean", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp",
    "ReduceSumSquare", "ArgMax", "ArgMin", "Softmax", "LogSoftmax", "CumSum", "TopK", "LayerNormalization",
    # products (Einsum of two operands: more may build an intermediate no tensor shows, probe 38)
    "MatMul", "Gemm", "Einsum",
    # moving values: every output value is an input value
    "Reshape", "Transpose", "Unsqueeze", "Squeeze", "Flatten", "Concat", "Split", "Slice", "Gather", "GatherND",
    "GatherElements", "Expand", "Tile", "Shape", "Size", "Constant", "ConstantOfShape",
    # the planner's noise, drawn in the graph
    "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike"}
"""Operations a planning step may hold: what robot-wm's exports use (about 40) and the element-wise, reducing and
shape operations of their kind. Each reads and writes its tensors' values a bounded number of times, with no buffer of
its own beyond them. A list of refused operations (control flow, convolutions, recurrent cells, determinants, ...)
was not enough: an `LRN` of size 10^9 allocated 4 GB of scratch memory behind tensors of one value, and a
three-operand `Einsum` a [30000, 30000] intermediate (probe 38)."""


class GraphSize(NamedTuple):
    tensor_bytes: int  # every tensor of a step (inputs, initializers, intermediate values, outputs) at once
    work: int          # multiply-adds of its products plus the values each other operation reads and writes


def node_count(proto: onnx.ModelProto) -> int:
    """The nodes of ``proto``'s graph and of the functions it holds."""
    return len(proto.graph.node) + sum(len(f.node) for f in proto.functions)


def check_graph(proto: onnx.ModelProto, props: dict[str, str]) -> GraphSize:
    """``proto``'s size and work, or a ValueError saying what in it no robot-wm export makes (``props``: its
    metadata, whose ``planner_memory_bytes`` and ``model_flops_per_step`` bound it: deleted, hashes recomputed, the
    bounds were skipped as an old file's, and a 1 GB tensor deployed: probe 35)."""
    declared, flops = _count(props.get("planner_memory_bytes")), _count(props.get("model_flops_per_step"))
    if declared is None or flops is None:
        said = {k: props.get(k) for k in ("planner_memory_bytes", "model_flops_per_step")}
        raise ValueError(f"its metadata {said} does not say what a planning step needs in whole numbers (files "
                         "exported before 2026-11-29 lack them)")
    steps = (_count(props.get("horizon")) or 0) * (_count(props.get("iterations")) or 0)
    nodes = node_count(proto)
    if nodes > MAX_NODES:
        raise ValueError(f"it holds {nodes:,} nodes, more than the {MAX_NODES:,} any robot-wm planner holds")
    if nodes > MAX_NODES_PER_STEP * steps + MAX_NODES_BASE:
        raise ValueError(f"it holds {nodes:,} nodes, more than {MAX_NODES_PER_STEP} for each of the horizon x "
                         f"iterations = {steps:,} steps its metadata declares (plus {MAX_NODES_BASE:,})")
    if len(proto.graph.sparse_initializer):  # densified by onnxruntime at load: 1 GiB each from 200 bytes (probe 35)
        raise ValueError(f"it holds {len(proto.graph.sparse_initializer)} sparse initializer(s), which a robot-wm "
                         "planner never has")
    try:
        flat = onnx.inliner.inline_local_functions(proto) if len(proto.functions) else proto
        flat = _undeclared(flat)
        # without data propagation: it took minutes on 1,000 Expand nodes, and a planner's shapes follow from its
        # inputs and initializers alone
        inferred = onnx.shape_inference.infer_shapes(flat, check_type=False, strict_mode=False, data_prop=False)
    except Exception as e:  # noqa: BLE001 -- onnx's errors have no common type
        raise ValueError(f"its graph's tensor shapes cannot be inferred ({str(e)[:200]})") from None
    g = inferred.graph
    shapes: dict[str, tuple[list[int], int]] = {}
    for v in (*g.input, *g.value_info, *g.output):
        if v.type.HasField("tensor_type"):
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim] if t.HasField("shape") else [-1]
            shapes[v.name] = (dims, _itemsize(t.elem_type, v.name))
    for t in g.initializer:
        shapes[t.name] = (list(t.dims), _itemsize(t.data_type, t.name))
    if unknown := next((v.name for v in g.input if any(d < 0 for d in shapes.get(v.name, ([-1], 0))[0])), None):
        raise ValueError(f"the size of its input {unknown[:80]!r} is not fixed, where every tensor of a robot-wm planner "
                         "has a fixed size")
    for node in g.node:  # in run order: the first node at fault is named
        many = node.op_type == "Einsum" and not _einsum_form(node, shapes)
        if node.domain not in ("", "ai.onnx") or node.op_type not in _ALLOWED or many:
            raise ValueError(f"it holds a {node.domain + '.' if node.domain else ''}{node.op_type[:40]} node "
                             f"({node.name[:40] or 'unnamed'}{', not of the form ab,bc->ac' if many else ''}), "
                             "an operation a robot-wm planner never has (control flow, a convolution, a recurrent "
                             "cell, work or memory beyond its tensors' sizes, or another domain's)")
        for x in node.output:
            if x and any(d < 0 for d in shapes.get(x, ([-1], 0))[0]):
                raise ValueError(f"the size of its tensor {x[:80]!r} cannot be inferred from its inputs' sizes, where "
                                 "every tensor of a robot-wm planner has a fixed size")
    bound = MAX_TENSOR_RATIO * declared + (1 << 20)
    for name, (dims, item) in shapes.items():
        if (size := math.prod(dims) * item) > bound:
            raise ValueError(f"its tensor {name[:80]!r} of shape {dims} takes {size:,} bytes, more than the "
                             f"{declared:,} a planning step needs by its metadata (planner_memory_bytes)")
    work = sum(_work(node, shapes) for node in g.node)
    if work > MAX_WORK_RATIO * flops + 10**7:
        raise ValueError(f"its graph does {work:.3g} operations a step, more than {MAX_WORK_RATIO:g} x the "
                         f"{flops:.3g} its metadata declares (model_flops_per_step)")
    return GraphSize(sum(math.prod(d) * i for d, i in shapes.values()), work)


_EINSUM = re.compile(r"[a-z]+,[a-z]+->[a-z]*")


def _einsum_form(node: onnx.NodeProto, shapes: dict) -> bool:
    """An Einsum as exports write one: two operands, lowercase letters only, one per dimension (``th,nha->nta``).
    Spaces and ``...`` hid their work from the count (170x: probe 39), and three operands an intermediate (38)."""
    eq = next((a.s.decode(errors="replace") for a in node.attribute if a.name == "equation"), "")
    return len(node.input) == 2 and bool(_EINSUM.fullmatch(eq)) and all(
        len(term) == len(shapes.get(name, ([], 0))[0]) for term, name in zip(eq.split("->")[0].split(","), node.input,
                                                                            strict=True))


def _undeclared(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``proto`` without the shapes its file declares for intermediate values and outputs, its nodes in the
    order they run: shape inference keeps a declared shape (a forged ``value_info`` calling a 3 GB constant [1] passed
    the bounds: probe 37) and infers nothing past a node listed before its inputs' (onnxruntime runs such a graph).
    Every shape is then inferred from the inputs and initializers alone."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    del g.value_info[:]
    for o in g.output:
        if o.type.HasField("tensor_type"):
            o.type.tensor_type.ClearField("shape")
    ordered = _in_run_order(list(g.node), {v.name for v in (*g.input, *g.initializer)})
    del g.node[:]
    g.node.extend(ordered)
    return out


def _in_run_order(nodes: list, given: set[str]) -> list:
    """``nodes`` sorted so that each comes after the nodes making its inputs (a ValueError for a cycle, or an input
    no node makes and the graph does not have)."""
    makers = {x: i for i, n in enumerate(nodes) for x in n.output if x}
    waiting = [sum(1 for x in set(n.input) if x in makers) for n in nodes]
    users: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        for x in set(n.input):
            if x in makers:
                users.setdefault(makers[x], []).append(i)
            elif x and x not in given:
                raise ValueError(f"its node {n.name[:40] or n.op_type!r} reads {x[:80]!r}, which nothing in the graph "
                                 "makes")
    ready = [i for i, w in enumerate(waiting) if w == 0]  # a heap: a graph already in order keeps it
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(nodes[i])
        for j in users.get(i, ()):
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(nodes):
        raise ValueError("its nodes depend on each other in a cycle")
    return order


def _count(text: str | None) -> int | None:
    """A whole number written in ASCII digits (at most 30: 5,000 digits were int()'s "Exceeds the limit": probe 36)."""
    return int(text) if isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 30 else None


def _itemsize(elem_type: int, name: str) -> int:
    """Bytes a value of ``elem_type`` takes; a string tensor is refused (its size is its strings': 29 doublings of one
    made 512 MB from a shape of [1]: probe 35)."""
    if elem_type == onnx.TensorProto.STRING:
        raise ValueError(f"its tensor {name[:80]!r} holds strings, which a robot-wm planner never has")
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return 8


def _work(node: onnx.NodeProto, shapes: dict) -> int:
    """Multiply-adds of a product; for any other operation, the values it reads and writes."""
    size = lambda name: math.prod(shapes[name][0]) if name in shapes else 1  # a scalar attribute: 1
    moved = sum(size(x) for x in (*node.input, *node.output) if x)
    if node.op_type not in _PRODUCTS:
        return moved
    if node.op_type == "Einsum":  # every index once: the product of all their lengths (_einsum_form checked it)
        eq = next((a.s.decode(errors="replace") for a in node.attribute if a.name == "equation"), "")
        lengths: dict[str, int] = {}
        for term, name in zip(eq.split("->")[0].split(","), node.input, strict=True):
            for letter, n in zip(term, shapes.get(name, ([], 0))[0], strict=True):
                lengths[letter] = max(lengths.get(letter, 1), n)
        return max(math.prod(lengths.values()), moved)
    a = shapes.get(node.input[0], ([1], 4))[0] or [1]
    trans = any(x.name == "transA" and x.i for x in node.attribute)
    inner = a[0] if node.op_type == "Gemm" and trans else a[-1]
    return sum(size(x) for x in node.output if x) * inner + moved
