"""Build one ExecuTorch program (base or base+LoRA) over the shared foundation weights.

Uses executorch's own pieces directly: its Llama ``Transformer`` with ``LoRALinear``, the
custom-sdpa and custom-KV-cache source transforms, ``torch.export``, the XNNPACK
partitioner and ``to_executorch`` with external constants. Every base weight is tagged for
``foundation.ptd``; LoRA weights stay inside the ``.pte``.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import heapq
import itertools
import os
import tempfile
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from exporter.base import LlamaShape, Rope
from exporter.hqq import blocked_hqq
from lora_tui.common.files import write_atomic
from lora_tui.format import FOUNDATION_FILE, FP32, Quantization, llm_constant_methods

if TYPE_CHECKING:
    from executorch.exir import ExecutorchProgramManager

MAX_PREFILL = 128  # tokens one forward call may take; longer prompts are fed in chunks


@dataclass(frozen=True)
class ProgramSpec:
    shape: LlamaShape
    rope: Rope
    max_context: int
    foundation_id: int  # also in the manifest; lets a reader tell which .ptd a .pte needs
    bos_id: int | None
    stop_ids: tuple[int, ...]
    lora_rank: int | None = None
    lora_targets: tuple[str, ...] = ()
    quantization: Quantization = FP32
    # Every position's logits, not the last one's (export_llm's --generate_full_logits):
    # the base program scores a reply in one prefill. Runners take the last row, as ever.
    full_logits: bool = False


@dataclass
class LoweredProgram:
    manager: ExecutorchProgramManager

    def write_program(self, path: Path) -> None:
        write_atomic(path, self.manager.write_to_file)

    def write_foundation(self, path: Path) -> None:
        """Write the shared weights this program reads, under ``path``'s name."""
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".foundation.") as scratch:
            self.manager.write_tensor_data_to_file(scratch)
            written = Path(scratch) / FOUNDATION_FILE
            if not written.is_file():
                raise RuntimeError("the program wrote no foundation weights")
            os.replace(written, path)


def _tag(name: str) -> str | None:
    # LoRA weights stay in the program; everything else is the shared foundation.
    return None if "lora" in name else FOUNDATION_FILE


def lower_program(
    spec: ProgramSpec,
    weights: dict[str, torch.Tensor],
    step: Callable[[str], None] = lambda _: None,
) -> LoweredProgram:
    # Tracing and lowering build and drop millions of graph objects, and Python's cycle
    # collector kept walking them all: to_edge_transform_and_lower on 6 of SmolLM2's layers
    # took 38.8 s with it and 32.4 s without. Off for the lowering (peak RSS 3.9 GB for all
    # 30 layers), back on after.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _lower(spec, weights, step)
    finally:
        if was_enabled:
            gc.enable()


def _lower(
    spec: ProgramSpec, weights: dict[str, torch.Tensor], step: Callable[[str], None]
) -> LoweredProgram:
    from executorch.exir import (
        EdgeCompileConfig,
        ExecutorchBackendConfig,
        to_edge_transform_and_lower,
    )
    from executorch.exir.passes import MemoryPlanningPass
    from executorch.exir.passes.sym_shape_eval_pass import ConstraintBasedSymShapeEvalPass

    step("building model")
    model = _build_model(spec, weights)
    max_seq = min(MAX_PREFILL, spec.max_context)
    step("torch.export")
    exported = _export(model, max_seq)

    step("lowering to XNNPACK")
    partitioners = xnnpack_partitioners(spec.quantization)
    with (
        _decompose_once(),
        _partitions_share_weights(),
        _one_sort_per_graph(),
        _llama_passes_only(),
    ):
        edge = to_edge_transform_and_lower(
            exported,
            partitioner=partitioners,
            transform_passes=[_foundation_tags_pass()],
            compile_config=EdgeCompileConfig(_check_ir_validity=False, _skip_dim_order=True),
            constant_methods=llm_constant_methods(
                max_seq_len=max_seq,
                max_context_len=spec.max_context,
                n_layers=spec.shape.n_layers,
                vocab_size=spec.shape.vocab_size,
                bos_id=spec.bos_id,
                eos_ids=list(spec.stop_ids),
                foundation_id=spec.foundation_id,
            ),
        )

    step("serialising")
    program = edge.to_executorch(
        ExecutorchBackendConfig(
            extract_delegate_segments=True,
            do_quant_fusion_and_const_prop=True,
            memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False),
            sym_shape_eval_pass=ConstraintBasedSymShapeEvalPass(),
            external_constants=lambda node: _tag(node.name),
        )
    )
    return LoweredProgram(program)


def _export(model: torch.nn.Module, max_seq: int) -> torch.export.ExportedProgram:
    from executorch.extension.llm.export.export_passes import RemoveRedundantTransposes
    from torch.nn.attention import SDPBackend, sdpa_kernel

    # The inputs export_llm gives its programs, which ExecuTorch's LLM runners feed:
    # token ids [1, T] and the position of the first one.
    example = (torch.tensor([[2, 3, 4]], dtype=torch.long), {"input_pos": torch.tensor([0])})
    dynamic_shapes = ({1: torch.export.Dim("token_dim", max=max_seq - 1)}, {"input_pos": {0: 1}})
    with sdpa_kernel([SDPBackend.MATH]), torch.no_grad():
        # Non-strict: traces by running the Python, not through Dynamo. Three times faster on
        # SmolLM2 (17 s against 49 s) and the same program, byte for byte.
        exported = torch.export.export(model, example, dynamic_shapes=dynamic_shapes, strict=False)
    # ExecuTorch's attention, KV cache and SDPA each transpose q, k and v to their own
    # layout and back: ten transposes a layer, four of them over the whole KV cache, every
    # step. export_llm removes the pairs that undo each other with this pass; so do we.
    RemoveRedundantTransposes()(exported.graph_module)
    return exported


def xnnpack_partitioners(quantization: Quantization) -> list:
    """The XNNPACK partitioners a program of this quantization is lowered with."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
        XnnpackDynamicallyQuantizedPartitioner,
        XnnpackPartitioner,
    )

    if quantization == FP32:
        return [_unchecked(XnnpackPartitioner)()]
    # As export_llm lowers 8da4w: the dynamically quantized linears first, then the rest
    # (the fp32 LoRA linears among them). One partitioner for both halves the delegate
    # calls but measured no faster (README, against llama.cpp).
    return [_unchecked(XnnpackDynamicallyQuantizedPartitioner)(), _unchecked(XnnpackPartitioner)()]


def _foundation_tags_pass() -> object:
    """Tag every weight for the foundation (LoRA's for the program), in place, instead of
    unlifting and re-exporting as export_llm does: XNNPACK reads the tag from each weight
    placeholder's custom meta when it serialises the weights. It runs after the
    decompositions and before partitioning, so it also sees the placeholders that taking a
    quantized weight apart creates (torchao's int4 data and scales)."""
    from executorch.exir.pass_base import ExportedProgramPassBase, ExportedProgramPassResult

    class TagFoundationWeights(ExportedProgramPassBase):
        def call(self, exported_program):  # type: ignore[no-untyped-def]
            signature = exported_program.graph_signature
            weights = {
                **signature.inputs_to_parameters,
                **signature.inputs_to_lifted_tensor_constants,
            }
            for node in exported_program.graph_module.graph.nodes:
                if node.op == "placeholder" and node.name in weights:
                    tag = _tag(weights[node.name])
                    node.meta.setdefault("custom", {})["delegate_constant_tag"] = tag
            return ExportedProgramPassResult(exported_program, True)

    return TagFoundationWeights()


@contextlib.contextmanager
def _decompose_once() -> Iterator[None]:
    """Functionalise and decompose the graph in one retrace instead of two.

    ``to_edge_transform_and_lower`` retraces the whole graph to functionalise it
    (``run_decompositions({})``), then again to decompose what no partitioner keeps whole
    (here a few ops: ``type_as``, ``item``, ``silu``, ``sym_size``). A partitioner that
    checks no node (``_unchecked``) keeps the same ops whole whatever the graph, so both can
    be one ``run_decompositions`` with that table, made before ExecuTorch's own steps: its
    functionalising call is handed the result as it is, and its decomposing call finds
    nothing left to decompose and skips itself. The programs come out byte for byte the
    same (tests/integration/test_standard_programs.py lowers both ways).
    """
    from executorch.exir.backend.partitioner import Partitioner
    from executorch.exir.program import _program

    original = _program._gen_edge_manager_for_partitioners

    def decomposed_first(partitioner, aten_programs, *args, **kwargs):  # type: ignore[no-untyped-def]
        programs = {}
        for name, program in aten_programs.items():
            table = _program._default_decomposition_table()
            for each in partitioner.get(name, []):
                keep_whole, check = each.ops_to_not_decompose(program)
                pre_transform = type(each).transform_for_pre_decomposition
                if (
                    check is not None
                    or pre_transform is not Partitioner.transform_for_pre_decomposition
                ):
                    return original(partitioner, aten_programs, *args, **kwargs)
                for op in keep_whole:
                    table.pop(op, None)
            if partitioner.get(name):
                program = _functional_as_it_is(program.run_decompositions(table))
            programs[name] = program
        return original(partitioner, programs, *args, **kwargs)

    _program._gen_edge_manager_for_partitioners = decomposed_first
    try:
        yield
    finally:
        _program._gen_edge_manager_for_partitioners = original


def _functional_as_it_is(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """``program``, whose ``run_decompositions({})`` (functionalise, decompose nothing)
    returns it as it is: it is functional already."""
    decompose = program.run_decompositions

    def run_decompositions(decomp_table=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        if decomp_table == {} and not args and not kwargs:
            return program
        return decompose(decomp_table, *args, **kwargs)

    program.run_decompositions = run_decompositions  # type: ignore[method-assign]
    return program


@contextlib.contextmanager
def _partitions_share_weights() -> Iterator[None]:
    """Let ExecuTorch's copies of the partitions share the weights instead of cloning them.

    Before XNNPACK preprocesses any partition, ExecuTorch deep-copies every partition's
    program, weights included, in case a backend rewrites a graph; the copies live until the
    last partition is done (and, with the cycle collector off, to the end of the lowering).
    XNNPACK reads the weights and never writes them, so sharing them gives the same program,
    byte for byte (checked on the test fixtures), with one full copy of the weights less at
    the export's peak: 16.1 against 11.x GiB for a Llama-3.2-1B-shaped model
    (benchmarks/llama32_1b_shape.py). ExecuTorch 1.4 copies in ``backend_api``; 1.5 moved
    the copy to ``BackendDetails.copy_exported_program_for_preprocess``, which this missed:
    the 1B shape's first fp32 export (49,152-token vocabulary) peaked at 13.4 GiB, and at
    9.3 GiB with both covered (tests/integration/test_lowering_memory.py checks what XNNPACK
    is handed).
    """
    from executorch.exir.backend import backend_api, backend_details
    from torch.export import ExportedProgram

    def deepcopy(obj: object, memo: dict[int, object] | None = None) -> object:
        memo = {} if memo is None else memo
        if isinstance(obj, ExportedProgram):
            for value in (*obj.state_dict.values(), *obj.constants.values()):
                if isinstance(value, torch.Tensor):
                    memo[id(value)] = value
        return copy.deepcopy(obj, memo)

    sharing = types.SimpleNamespace(deepcopy=deepcopy)
    originals = backend_api.copy, backend_details.copy
    backend_api.copy = backend_details.copy = sharing  # type: ignore[assignment]
    try:
        yield
    finally:
        backend_api.copy, backend_details.copy = originals


@contextlib.contextmanager
def _one_sort_per_graph() -> Iterator[None]:
    """Sort the graph once after cutting out every partition, not once per cut.

    ExecuTorch cuts each XNNPACK partition out of the whole graph and then re-sorts it
    (``legalize_graph``): a copy of every node and a recompile of the whole module per cut,
    about 120 cuts of a 2,300-node graph for an fp32 SmolLM2. Cutting them all and sorting
    once, in place (the nodes it still refers to stay the same objects), took a SmolLM2
    template's ``to_edge_transform_and_lower`` from 142 s to 110 s, and the program's
    logits stayed bit-identical (checked by the standard-programs tests).
    """
    from executorch.exir.backend import backend_api

    create, cut_all = (
        backend_api.create_submodule_from_nodes,
        backend_api._create_partitions_in_graph_module,
    )

    def create_unsorted(gm, node_list, tag, skip_legalize_graph=False):  # type: ignore[no-untyped-def]
        return create(gm, node_list, tag, skip_legalize_graph=True)

    def cut_all_then_sort(graph_module, *args, **kwargs):  # type: ignore[no-untyped-def]
        backend_api.create_submodule_from_nodes = create_unsorted
        try:
            cuts = cut_all(graph_module, *args, **kwargs)
        finally:
            backend_api.create_submodule_from_nodes = create
        _sort_in_place(graph_module.graph)
        graph_module.recompile()
        return cuts

    backend_api._create_partitions_in_graph_module = cut_all_then_sort
    try:
        yield
    finally:
        backend_api._create_partitions_in_graph_module = cut_all


def _sort_in_place(graph: torch.fx.Graph) -> None:
    """Reorder ``graph``'s nodes so each comes after its inputs, keeping the given order
    wherever the inputs allow (a stable topological sort), by moving the nodes themselves."""
    nodes = list(graph.nodes)
    position = {node: i for i, node in enumerate(nodes)}
    waiting_on = {node: len(node.all_input_nodes) for node in nodes}
    ready = [(position[n], n) for n in nodes if waiting_on[n] == 0]
    heapq.heapify(ready)
    order: list[torch.fx.Node] = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for user in node.users:
            waiting_on[user] -= 1
            if waiting_on[user] == 0:
                heapq.heappush(ready, (position[user], user))
    if len(order) != len(nodes):
        raise RuntimeError("the partitioned graph has a cycle")
    if order[0] is not nodes[0]:
        nodes[0].prepend(order[0])
    for before, node in itertools.pairwise(order):
        if before.next is not node:
            before.append(node)


def _unchecked(partitioner: type) -> type:
    """An XNNPACK partitioner that declares no per-node check on the ops it keeps whole.

    With a check, ``to_edge_transform_and_lower`` decomposes the whole graph twice for that
    partitioner (its EDGE_DO_NOT_DECOMP path); without one, once. The check only matters
    for an op XNNPACK might refuse, and every linear here is one it takes (fp32, or int4 in
    groups or int8 per channel, with int8 dynamic activations): the programs come out byte
    for byte the same, 35 s sooner for an fp32 SmolLM2, and two whole decompositions fewer
    for 8da4w and 8da8w, whose two partitioners each had a check.
    """

    class Unchecked(partitioner):  # type: ignore[misc, valid-type]
        def ops_to_not_decompose(self, ep):  # type: ignore[no-untyped-def]
            ops, _check = super().ops_to_not_decompose(ep)
            return ops, None

    Unchecked.__name__ = f"Unchecked{partitioner.__name__}"
    return Unchecked


@contextlib.contextmanager
def _llama_passes_only() -> Iterator[None]:
    """Run only the XNNPACK passes a Llama-family graph needs on each partition.

    ``XnnpackBackend.preprocess`` runs 17 passes over every partition, each retracing it
    with symbolic shapes: they rewrite conv, batch-norm, pooling, upsampling, SDPA and
    channels-last patterns these graphs do not contain. Two matter: linears as XNNPACK
    takes them, and the foundation's tag carried onto the dequantize nodes of quantized
    weights (without it, an 8da4w program keeps its int4 weights itself). With just those
    two the programs and foundations come out byte for byte the same (tested), and a
    2-layer 8da4w SmolLM2 lowers in 36 s instead of 51 s.
    """
    from executorch.backends.xnnpack import xnnpack_preprocess
    from executorch.backends.xnnpack._passes.convert_to_linear import ConvertToLinearPass
    from executorch.backends.xnnpack._passes.propagate_custom_meta_pass import (
        PropagateCustomMetaPass,
    )

    every_pass = xnnpack_preprocess.XNNPACKPassManager

    class LlamaPasses(every_pass):  # type: ignore[misc, valid-type]
        def __init__(self, exported_program, passes=None):  # type: ignore[no-untyped-def]
            super().__init__(
                exported_program, passes or [ConvertToLinearPass, PropagateCustomMetaPass]
            )

    xnnpack_preprocess.XNNPACKPassManager = LlamaPasses  # type: ignore[misc]
    try:
        yield
    finally:
        xnnpack_preprocess.XNNPACKPassManager = every_pass  # type: ignore[misc]


def _build_model(spec: ProgramSpec, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    from executorch.examples.models.llama.llama_transformer import construct_transformer
    from executorch.examples.models.llama.model_args import ModelArgs
    from executorch.examples.models.llama.source_transformation.custom_kv_cache import (
        replace_kv_cache_with_custom_kv_cache,
    )
    from executorch.examples.models.llama.source_transformation.sdpa import (
        replace_sdpa_with_custom_op,
    )

    shape = spec.shape
    lora = spec.lora_rank is not None
    args = ModelArgs(
        dim=shape.dim,
        n_layers=shape.n_layers,
        n_heads=shape.n_heads,
        n_kv_heads=shape.n_kv_heads,
        head_dim=shape.head_dim,
        hidden_dim=shape.hidden_dim,
        vocab_size=shape.vocab_size,
        norm_eps=shape.norm_eps,
        rope_theta=shape.rope_theta,
        use_hf_rope=True,
        attention_qkv_bias=shape.qkv_bias,  # Qwen2
        use_qk_norm=shape.qk_norm,  # Qwen3, which normalises q and k before RoPE
        qk_norm_before_rope=shape.qk_norm,
        max_batch_size=1,
        max_seq_len=min(MAX_PREFILL, spec.max_context),
        max_context_len=spec.max_context,
        use_kv_cache=True,
        generate_full_logits=spec.full_logits,
        use_sdpa_with_kv_cache_op=True,
        enable_dynamic_shape=True,
        # The adapter's per-module scale is folded into lora_b, so the layer's alpha/r is 1.
        r=spec.lora_rank if lora else None,
        lora_alpha=spec.lora_rank if lora else None,
        target_modules=list(spec.lora_targets) if lora else None,
    )
    from accelerate import init_empty_weights

    # Parameters are created on the meta device and replaced by the base's own tensors
    # below, so the model never holds a second, randomly initialised copy of the weights
    # (5 GB for a 1B model). Buffers (rope tables, KV caches) are built on the CPU as usual.
    with init_empty_weights(include_buffers=False):
        model = construct_transformer(args)
    # ExecuTorch's Hugging Face-layout tables know no Llama 3 or yarn scaling; the tables
    # transformers computes replace them (for plain RoPE the two are the same numbers).
    cos, sin = spec.rope.tables(model.rope.freqs_cos.shape[0])
    model.rope.freqs_cos.copy_(cos)
    model.rope.freqs_sin.copy_(sin)
    missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    weight_names = {name for name, _ in model.named_parameters()}
    if unexpected or weight_names & set(missing):
        raise RuntimeError(f"weights do not fit the model: missing {missing}, extra {unexpected}")
    model = quantize_model(model, spec.quantization)
    model = replace_sdpa_with_custom_op(model)
    model = replace_kv_cache_with_custom_kv_cache(model)
    return model.eval()


def program_state(spec: ProgramSpec, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The base's tensors as a program of ``spec`` holds them before lowering: the model
    built and quantized as ``lower_program`` builds it, each quantized weight taken apart
    (``NAME.qdata``, ``NAME.scale``, ``NAME.zero_point``), the KV caches left out."""
    return model_state(_build_model(spec, weights))


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A built model's tensors as ``program_state`` gives them."""
    state: dict[str, torch.Tensor] = {}
    # named_buffers: the rotary tables are not persistent, so not in state_dict.
    for name, tensor in {**dict(model.named_buffers()), **model.state_dict()}.items():
        if "kv_cache" in name:
            continue
        parts = getattr(tensor, "tensor_data_names", None)
        if parts is None:
            state[name] = tensor
        else:
            state.update({f"{name}.{part}": getattr(tensor, part) for part in parts})
    return state


def quantize_model(model: torch.nn.Module, quantization: Quantization) -> torch.nn.Module:
    """ExecuTorch's own source transforms, as export_llm applies them for
    ``quantization.qmode: 8da4w`` and ``embedding_quantize: '8,0'``: the embedding table
    first (int8 per row), then every linear but LoRA's A and B (int4 in groups, int8 dynamic
    activations)."""
    if quantization == FP32:
        return model
    from executorch.examples.models.llama.source_transformation.quantize import (
        get_quant_embedding_transform,
        quantize,
    )

    # torchao's HQQ scale search, a block of rows at a time: the same bytes, 13x sooner.
    with torch.no_grad(), blocked_hqq():
        model = get_quant_embedding_transform("8,0")(model)
        return quantize(model, quantization.mode, group_size=quantization.group_size)
