"""
peftcpp native engine: tensors, autograd, kernels, optimizers
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['DType', 'DTypeError', 'GGMLTypeTraits', 'GGUFFile', 'GGUFWriter', 'LlamaFileType', 'Tensor', 'abs', 'adamw_step', 'add', 'add_scalar', 'amax', 'backward_profile', 'broadcast_to', 'cat', 'checkpoint', 'clamp', 'clip_grad_norm', 'contiguous', 'cos', 'cross_entropy', 'div', 'dropout', 'embedding', 'empty', 'empty_cache', 'exp', 'from_numpy', 'full', 'gather', 'gelu', 'gelu_mul', 'get_num_threads', 'get_rng_state', 'ggml_types', 'gguf_dequantize', 'gguf_file_type_id', 'gguf_read', 'gguf_tensor', 'gguf_tensor_types', 'gguf_type_traits', 'index_select', 'is_grad_enabled', 'layer_norm', 'linear', 'linear_cross_entropy', 'llama_file_types', 'load_safetensors', 'log', 'log_softmax', 'lora_linear', 'manual_seed', 'matmul', 'maximum', 'mean', 'memory_stats', 'meta', 'minimum', 'mul', 'mul_scalar', 'narrow', 'neg', 'permute', 'pow', 'pow_scalar', 'quantize_gguf', 'quantize_rows', 'rand', 'randn', 'rdiv_scalar', 'relu', 'reset_peak_memory', 'reshape', 'rms_norm', 'rope', 'rsqrt', 'rsub_scalar', 'save_safetensors', 'scaled_dot_product_attention', 'select', 'set_backward_profiling', 'set_grad_enabled', 'set_num_threads', 'set_rng_state', 'sgd_step', 'sgemm_seconds', 'sigmoid', 'silu', 'sin', 'softmax', 'split', 'sqrt', 'sub', 'sum', 'svd', 'swiglu', 'tanh', 'to_dtype', 'transpose', 'where', 'write_safetensors', 'zeros']
class DTypeError(TypeError):
    """
    A tensor or value of the wrong dtype or type for an op (a TypeError)
    """
class DType:
    """
    Element types of a Tensor
    
    Members:
    
      float32
    
      float16
    
      bfloat16
    
      int32
    
      int64
    
      bool
    """
    __members__: typing.ClassVar[dict[str, DType]]
    bfloat16: typing.ClassVar[DType]
    bool: typing.ClassVar[DType]
    float16: typing.ClassVar[DType]
    float32: typing.ClassVar[DType]
    int32: typing.ClassVar[DType]
    int64: typing.ClassVar[DType]
    @typing.overload
    def __eq__(self, other: DType) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: DType) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def is_floating_point(self) -> bool:
        """
        True for float32, float16 and bfloat16
        """
    @property
    def itemsize(self) -> int:
        """
        Bytes per element
        """
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class Tensor:
    """
    A strided n-d array with autograd (peftcpp adds torch-style methods in python/peftcpp)
    """
    @typing.overload
    def __init__(self, data: Tensor) -> None:
        """
        A new handle sharing data's storage and autograd slots
        """
    @typing.overload
    def __init__(self, data: numpy.ndarray) -> None:
        """
        A tensor holding a copy of a numpy array (float64 becomes float32, other integers int64)
        """
    def _clone_raw(self) -> Tensor:
        """
        A fresh contiguous copy, outside autograd
        """
    def _contiguous_raw(self) -> Tensor:
        """
        Self when contiguous, else a contiguous copy
        """
    def _is_same(self, other: Tensor) -> bool:
        """
        Whether both handles are the same tensor (same autograd slots)
        """
    def _rebind(self, result: Tensor) -> None:
        """
        Makes this handle refer to result (its data and autograd history)
        """
    def _shares_storage(self, other: Tensor) -> bool:
        """
        Whether both tensors view the same storage
        """
    def _storage_is_owned(self) -> bool:
        """
        False when the storage borrows memory (numpy, an mmap)
        """
    def _to_raw(self, dtype: DType) -> Tensor:
        """
        A copy converted to dtype (self if already dtype)
        """
    def backward(self, gradient: Tensor | None = None, retain_graph: bool = False) -> None:
        """
        Accumulates d(self)/d(leaf) into each leaf's .grad (gradient: the seed, ones for a scalar)
        """
    def copy_(self, src: Tensor) -> Tensor:
        """
        Copies src (broadcast, converted) into this tensor in place; returns it
        """
    def data_ptr(self) -> int:
        """
        Address of the first element
        """
    def detach(self) -> Tensor:
        """
        A tensor sharing the data, outside the autograd graph
        """
    def dim(self) -> int:
        """
        Number of dimensions
        """
    def fill_(self, value: typing.SupportsFloat | typing.SupportsIndex) -> Tensor:
        """
        Fills with value in place; returns the tensor
        """
    def is_contiguous(self) -> bool:
        """
        Whether the layout is row-major contiguous
        """
    def item(self) -> float:
        """
        The value of a one-element tensor as a float
        """
    def numel(self) -> int:
        """
        Number of elements
        """
    def numpy(self) -> numpy.ndarray:
        """
        A numpy view of the data (a float32 copy for bfloat16)
        """
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """
        Sets requires_grad in place; returns the tensor
        """
    def storage_offset(self) -> int:
        """
        Offset of the first element in its storage, in elements
        """
    def stride(self) -> tuple:
        """
        Strides in elements, as a tuple
        """
    def zero_(self) -> Tensor:
        """
        Fills with zeros in place; returns the tensor
        """
    @property
    def data(self) -> Tensor:
        """
        Same as detach()
        """
    @property
    def dtype(self) -> DType:
        """
        Element type
        """
    @property
    def grad(self) -> typing.Any:
        """
        Accumulated gradient (None until backward reaches this tensor); assignable
        """
    @grad.setter
    def grad(self, arg1: typing.Any) -> None:
        ...
    @property
    def grad_fn(self) -> typing.Any:
        """
        Name of the backward node that produced this tensor, or None for leaves
        """
    @property
    def is_leaf(self) -> bool:
        """
        True unless produced by a differentiable op
        """
    @property
    def ndim(self) -> int:
        """
        Number of dimensions
        """
    @property
    def requires_grad(self) -> bool:
        """
        Whether backward() computes a gradient for this tensor
        """
    @requires_grad.setter
    def requires_grad(self, arg1: bool) -> None:
        ...
    @property
    def shape(self) -> tuple:
        """
        Sizes as a tuple of ints
        """
class GGUFFile:
    """
    A GGUF file, mapped read-only and validated on open. Tensors of type F32/F16/BF16/I32/I64 are zero-copy views of the mapping; quantized ones are dequantized to float32.
    """
    def __contains__(self, name: str) -> bool:
        """
        Whether the file has a tensor of this name
        """
    def __init__(self, path: str) -> None:
        """
        Maps and validates the file; malformed files raise ValueError naming the key or tensor
        """
    def __len__(self) -> int:
        """
        Number of tensors
        """
    def raw(self, name: str) -> numpy.ndarray:
        """
        The tensor's bytes in the file: a read-only numpy uint8 view
        """
    def tensor(self, name: str, dequantize: bool = True) -> Tensor:
        """
        The tensor (row-major shape): a read-only zero-copy view for F32/F16/BF16/I32/I64, a dequantized float32 copy for quantized types
        """
    @property
    def alignment(self) -> int:
        """
        Tensor data alignment in bytes (general.alignment, default 32)
        """
    @property
    def data_offset(self) -> int:
        """
        File offset of the tensor data section
        """
    @property
    def metadata(self) -> typing.Any:
        """
        dict key -> value (int, float, bool, str, or nested lists), in file order
        """
    @property
    def metadata_types(self) -> dict:
        """
        dict key -> GGUF type name ('UINT32', 'ARRAY[STRING]', ...)
        """
    @property
    def path(self) -> str:
        """
        The path given to the constructor
        """
    @property
    def tensor_infos(self) -> list:
        """
        list of dicts: name, type, type_id, shape (row-major), ne (as stored), offset, nbytes
        """
    @property
    def tensor_names(self) -> list:
        """
        Tensor names in file order
        """
    @property
    def version(self) -> int:
        """
        GGUF version (2 or 3)
        """
class GGMLTypeTraits:
    """
    One row of the ggml type table (ggml.h's enum ggml_type)
    """
    def __repr__(self) -> str:
        """
        GGMLTypeTraits(NAME, id=..., block_size=..., type_size=...)
        """
    @property
    def block_size(self) -> int:
        """
        Elements per block (1 for unblocked types)
        """
    @property
    def dequantizable(self) -> bool:
        """
        Whether peftcpp decodes this type to float32
        """
    @property
    def id(self) -> int:
        """
        ggml type id (ggml.h numbering, as stored in GGUF files)
        """
    @property
    def name(self) -> str:
        """
        Type name: 'F32', 'Q4_K', ...
        """
    @property
    def quantizable(self) -> bool:
        """
        Whether peftcpp writes this type from float32 (quantize_rows)
        """
    @property
    def type_size(self) -> int:
        """
        Bytes per block
        """
class GGUFWriter:
    """
    Writes a GGUF v3 file: metadata (set) and tensors (add_tensor) are collected, then write() converts and streams them to a temporary file renamed into place.
    """
    def __contains__(self, key: str) -> bool:
        """
        Whether a metadata key is set
        """
    def __init__(self, path: str, alignment: typing.SupportsInt | typing.SupportsIndex = 32) -> None:
        """
        A writer for path; nothing is written before write(). alignment: a power of two
        """
    def add_tensor(self, name: str, type: typing.Any, source: numpy.ndarray, shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] | None = None, bf16: bool = False) -> None:
        """
        Adds a tensor of ggml type `type` (name or id) from a C-contiguous numpy array: float32, float16, uint16 bfloat16 bits (bf16=True), or uint8 bytes already in the target type (then shape= is the row-major shape). Conversion happens during write().
        """
    def remove(self, key: str) -> None:
        """
        Removes a metadata key (if set)
        """
    def set(self, key: str, value: typing.Any, type: str) -> None:
        """
        Sets key to value stored as GGUF type ('UINT32', 'FLOAT32', 'BOOL', 'STRING', 'ARRAY[INT32]', ...)
        """
    def write(self, progress: typing.Any = None) -> None:
        """
        Writes the file atomically; progress(done, total) after each tensor
        """
    @property
    def n_tensors(self) -> int:
        """
        Number of tensors added so far
        """
class LlamaFileType:
    """
    One llama.cpp file type (llama_ftype) quantize_gguf can write
    """
    def __repr__(self) -> str:
        """
        LlamaFileType(NAME, id=...)
        """
    @property
    def default_type(self) -> str:
        """
        ggml type name most tensors get (llama_ftype_get_default_type)
        """
    @property
    def id(self) -> int:
        """
        llama_ftype id, as stored in general.file_type
        """
    @property
    def name(self) -> str:
        """
        File type name: 'Q4_K_M', 'Q8_0', ...
        """
def abs(a: Tensor) -> Tensor:
    """
    Elementwise |a|
    """
def adamw_step(params: collections.abc.Sequence[Tensor], exp_avgs: collections.abc.Sequence[Tensor | None], exp_avg_sqs: collections.abc.Sequence[Tensor | None], steps: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], lr: typing.SupportsFloat | typing.SupportsIndex, beta1: typing.SupportsFloat | typing.SupportsIndex, beta2: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, weight_decay: typing.SupportsFloat | typing.SupportsIndex) -> tuple[list[Tensor | None], list[Tensor | None], list[int]]:
    """
    One AdamW step (torch.optim.AdamW, foreach=False) over params that have a .grad; returns the updated (exp_avgs, exp_avg_sqs, steps)
    """
def add(a: Tensor, b: Tensor) -> Tensor:
    """
    a + b (broadcasting)
    """
def add_scalar(a: Tensor, s: typing.SupportsFloat | typing.SupportsIndex) -> Tensor:
    """
    a + s
    """
def amax(x: Tensor, dim: typing.SupportsInt | typing.SupportsIndex, keepdim: bool = False) -> Tensor:
    """
    Max over one dim; the gradient goes to the first maximum
    """
def backward_profile() -> dict[str, tuple[float, int]]:
    """
    Backward node name -> (seconds, calls) since set_backward_profiling(True)
    """
def broadcast_to(x: Tensor, shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> Tensor:
    """
    x broadcast to shape (numpy rules); the gradient is summed back
    """
def cat(tensors: collections.abc.Sequence[Tensor], dim: typing.SupportsInt | typing.SupportsIndex = 0) -> Tensor:
    """
    Concatenation along dim
    """
def checkpoint(function: collections.abc.Callable, inputs: collections.abc.Sequence[Tensor]) -> list[Tensor]:
    """
    Activation checkpointing: function(*inputs) -> Tensor(s), run without keeping its intermediates and run again during backward
    """
def clamp(a: Tensor, min: typing.SupportsFloat | typing.SupportsIndex, max: typing.SupportsFloat | typing.SupportsIndex) -> Tensor:
    """
    Elementwise min(max(a, min), max) (-inf / inf: no bound); the gradient flows where min <= a <= max
    """
def clip_grad_norm(params: collections.abc.Sequence[Tensor], max_norm: typing.SupportsFloat | typing.SupportsIndex, norm_type: typing.SupportsFloat | typing.SupportsIndex = 2.0, error_if_nonfinite: bool = False) -> float:
    """
    Scales the gradients in place so their global norm is at most max_norm; returns the norm before
    """
def contiguous(x: Tensor) -> Tensor:
    """
    x itself when row-major contiguous, else a contiguous copy
    """
def cos(a: Tensor) -> Tensor:
    """
    Elementwise cosine
    """
def cross_entropy(logits: Tensor, targets: Tensor, ignore_index: typing.SupportsInt | typing.SupportsIndex = -100, reduction: str = 'mean', label_smoothing: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> Tensor:
    """
    torch.nn.functional.cross_entropy for logits [N, V] and class-index targets [N]
    """
def div(a: Tensor, b: Tensor) -> Tensor:
    """
    a / b (broadcasting)
    """
def dropout(x: Tensor, p: typing.SupportsFloat | typing.SupportsIndex = 0.5, training: bool = True) -> Tensor:
    """
    Zeroes elements with probability p and scales the rest by 1/(1-p) when training (seeded generator)
    """
def embedding(ids: Tensor, weight: Tensor) -> Tensor:
    """
    Rows ids (int32/int64, any shape) of weight [V, C]: float32 [..., C]; the gradient scatter-adds into weight
    """
def empty(shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], dtype: DType = DType.float32) -> Tensor:
    """
    A new tensor with uninitialised data
    """
def empty_cache() -> None:
    """
    Returns cached free blocks to the system
    """
def exp(a: Tensor) -> Tensor:
    """
    Elementwise e ** a
    """
def from_numpy(array: numpy.ndarray, copy: bool = False) -> Tensor:
    """
    Tensor over a numpy array's memory (copy=False) or a copy of it
    """
def full(shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], value: typing.SupportsFloat | typing.SupportsIndex, dtype: DType = DType.float32) -> Tensor:
    """
    A new tensor filled with value
    """
def gather(x: Tensor, dim: typing.SupportsInt | typing.SupportsIndex, index: Tensor) -> Tensor:
    """
    torch.gather: out[..., j, ...] = x[..., index[..., j, ...], ...] along dim; backward scatter-adds
    """
def gelu(x: Tensor, approximate: str = 'none') -> Tensor:
    """
    GELU, exact (erf) or approximate='tanh' (like torch.nn.functional.gelu)
    """
def gelu_mul(gate: Tensor, up: Tensor, approximate: str = 'tanh') -> Tensor:
    """
    gelu(gate) * up as one op (GeGLU)
    """
def get_num_threads() -> int:
    """
    Threads the kernels and OpenBLAS use
    """
def get_rng_state() -> tuple[int, int]:
    """
    (seed, offset) of the global generator
    """
def ggml_types() -> list[GGMLTypeTraits]:
    """
    Every known ggml type: the unblocked types (F32, F16, ..., BF16) first, then the block types, each by id
    """
def gguf_dequantize(raw: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8], type: str) -> Tensor:
    """
    Dequantizes whole blocks of a ggml type ('Q4_K', ...) to a flat float32 tensor
    """
def gguf_file_type_id(ftype: typing.Any) -> int:
    """
    llama_ftype id of a file type name (validated)
    """
def gguf_read(path: str) -> dict:
    """
    {'version', 'alignment', 'metadata', 'tensors'} of a GGUF file
    """
def gguf_tensor(path_or_file: typing.Any, name: str, dequantize: bool = True) -> Tensor:
    """
    One tensor of a GGUF file (a path or a GGUFFile)
    """
def gguf_tensor_types(in_path: str, ftype: typing.Any = 'Q4_K_M') -> list:
    """
    [(tensor_name, type_name)] in output order: the plan quantize_gguf would follow
    """
def gguf_type_traits() -> dict:
    """
    name -> (type id, block size, bytes per block, dequantizable) for every known ggml type (a view of ggml_types())
    """
def index_select(x: Tensor, dim: typing.SupportsInt | typing.SupportsIndex, index: Tensor) -> Tensor:
    """
    Rows index (a 1-D int32/int64 tensor) of x along dim
    """
def is_grad_enabled() -> bool:
    """
    Whether ops record the autograd graph
    """
def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: typing.SupportsFloat | typing.SupportsIndex = 9.999999747378752e-06) -> Tensor:
    """
    Layer norm over the last dim (like torch.nn.functional.layer_norm)
    """
def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """
    x [..., K] @ weight[N, K].T + bias [N]; weight may be float16/bfloat16 (then frozen)
    """
def linear_cross_entropy(hidden: Tensor, weight: Tensor, targets: Tensor, ignore_index: typing.SupportsInt | typing.SupportsIndex = -100, reduction: str = 'mean', chunk_size: typing.SupportsInt | typing.SupportsIndex = 4096, softcap: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> Tensor:
    """
    cross_entropy(hidden @ weight.T, targets) (optionally softcapped) without materialising the logits: the vocabulary is processed chunk_size columns at a time
    """
def llama_file_types() -> list[LlamaFileType]:
    """
    Every file type quantize_gguf can write, in llama_ftype id order
    """
def load_safetensors(path: str) -> tuple[dict, dict]:
    """
    (tensors, metadata) of a safetensors file; the tensors share one read-only mmap of it
    """
def log(a: Tensor) -> Tensor:
    """
    Elementwise natural logarithm
    """
def log_softmax(x: Tensor, dim: typing.SupportsInt | typing.SupportsIndex = -1) -> Tensor:
    """
    log(softmax(x)) along dim, stably
    """
def lora_linear(x: Tensor, weight: Tensor, bias: Tensor | None, lora_A: Tensor, lora_B: Tensor, scale: typing.SupportsFloat | typing.SupportsIndex, dropout: typing.SupportsFloat | typing.SupportsIndex = 0.0, training: bool = False) -> Tensor:
    """
    LoRA linear as one op: x @ weight.T + bias + scale * (dropout(x) @ lora_A.T) @ lora_B.T, with lora_A [r, K] and lora_B [N, r]; the dropout mask is regenerated in backward, never stored
    """
def manual_seed(seed: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Seeds the global generator (counter-based: the offset restarts at 0)
    """
def matmul(a: Tensor, b: Tensor) -> Tensor:
    """
    a [..., M, K] @ b [..., K, N] with broadcast batch dims (OpenBLAS sgemm)
    """
def maximum(a: Tensor, b: Tensor) -> Tensor:
    """
    Elementwise max(a, b) (broadcasting); ties split the gradient evenly
    """
def mean(x: Tensor, dims: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] = [], keepdim: bool = False) -> Tensor:
    """
    Mean over dims (all dims when empty)
    """
def memory_stats() -> dict:
    """
    {'current', 'peak', 'cached'}: bytes of tensor memory in use, its peak, and freed blocks kept for reuse
    """
def meta(shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], dtype: DType = DType.float32) -> Tensor:
    """
    A read-only placeholder of this shape with no memory behind it (all strides 0)
    """
def minimum(a: Tensor, b: Tensor) -> Tensor:
    """
    Elementwise min(a, b) (broadcasting); ties split the gradient evenly
    """
def mul(a: Tensor, b: Tensor) -> Tensor:
    """
    a * b (broadcasting)
    """
def mul_scalar(a: Tensor, s: typing.SupportsFloat | typing.SupportsIndex) -> Tensor:
    """
    a * s
    """
def narrow(x: Tensor, dim: typing.SupportsInt | typing.SupportsIndex, start: typing.SupportsInt | typing.SupportsIndex, length: typing.SupportsInt | typing.SupportsIndex) -> Tensor:
    """
    View of elements start..start+length-1 along dim
    """
def neg(a: Tensor) -> Tensor:
    """
    -a
    """
def permute(x: Tensor, dims: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> Tensor:
    """
    View with the dims reordered
    """
def pow(a: Tensor, b: Tensor) -> Tensor:
    """
    a ** b (broadcasting)
    """
def pow_scalar(a: Tensor, p: typing.SupportsFloat | typing.SupportsIndex) -> Tensor:
    """
    a ** p
    """
def quantize_gguf(in_path: str, out_path: str, ftype: typing.Any = 'Q4_K_M', nthreads: typing.SupportsInt | typing.SupportsIndex = 0, progress: typing.Any = None) -> None:
    """
    Quantizes a model GGUF like `llama-quantize in out FTYPE` (no imatrix); the output is written atomically. progress(done_tensors, total_tensors) is called after each tensor.
    """
def quantize_rows(array: numpy.ndarray, type: str, nthreads: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.uint8]:
    """
    Quantizes each row of a C-contiguous float32 (rows, n) array to a ggml type ('Q4_K', 'Q8_0', 'F16', ...) exactly as ggml's reference quantizers; returns uint8 (rows, row_bytes). nthreads <= 0: engine default
    """
def rand(shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], low: typing.SupportsFloat | typing.SupportsIndex = 0.0, high: typing.SupportsFloat | typing.SupportsIndex = 1.0) -> Tensor:
    """
    float32 uniform in [low, high) from the seeded global generator
    """
def randn(shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], mean: typing.SupportsFloat | typing.SupportsIndex = 0.0, std: typing.SupportsFloat | typing.SupportsIndex = 1.0) -> Tensor:
    """
    float32 normal(mean, std) (Box-Muller) from the seeded global generator
    """
def rdiv_scalar(a: Tensor, s: typing.SupportsFloat | typing.SupportsIndex) -> Tensor:
    """
    s / a
    """
def relu(a: Tensor) -> Tensor:
    """
    Elementwise max(a, 0)
    """
def reset_peak_memory() -> None:
    """
    Restarts the peak of memory_stats() from the current use
    """
def reshape(x: Tensor, shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> Tensor:
    """
    x with a new shape of the same element count (one -1 allowed); a view when the layout allows
    """
def rms_norm(x: Tensor, weight: Tensor | None = None, eps: typing.SupportsFloat | typing.SupportsIndex = 9.999999974752427e-07, offset: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> Tensor:
    """
    x / sqrt(mean(x^2) + eps) * (offset + weight); offset=1 for Gemma
    """
def rope(x: Tensor, cos: Tensor, sin: Tensor, interleaved: bool = False) -> Tensor:
    """
    Rotary position embedding of x [B, H, T, D] with cos/sin [T, R/2] or [B, T, R/2]: x[..., :R] turns in pairs (i, i + R/2), or (2i, 2i + 1) when interleaved; the rest passes through
    """
def rsqrt(a: Tensor) -> Tensor:
    """
    Elementwise 1 / sqrt(a)
    """
def rsub_scalar(a: Tensor, s: typing.SupportsFloat | typing.SupportsIndex) -> Tensor:
    """
    s - a
    """
def save_safetensors(path: str, tensors: collections.abc.Mapping[str, Tensor], metadata: collections.abc.Mapping[str, str] | None = None) -> None:
    """
    Writes a safetensors file atomically (temporary file, fsync, rename)
    """
def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, is_causal: bool = True, scale: typing.SupportsFloat | typing.SupportsIndex = 0.0, sliding_window: typing.SupportsInt | typing.SupportsIndex = 0, softcap: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> Tensor:
    """
    softmax(q @ k.T * scale + mask) @ v for q [B, Hq, T, D], k [B, Hkv, S, D], v [B, Hkv, S, Dv] -> [B, Hq, T, Dv] (grouped-query when Hkv < Hq). scale <= 0: 1/sqrt(D); is_causal: bottom-right aligned; sliding_window > 0 and softcap > 0 (softcap * tanh(z / softcap)) as Gemma uses them
    """
def select(x: Tensor, dim: typing.SupportsInt | typing.SupportsIndex, index: typing.SupportsInt | typing.SupportsIndex) -> Tensor:
    """
    View of one index along dim, that dim dropped
    """
def set_backward_profiling(enabled: bool) -> None:
    """
    Times each backward node by name; read with backward_profile()
    """
def set_grad_enabled(enabled: bool) -> None:
    """
    Turns graph recording on or off
    """
def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Threads for the kernels and OpenBLAS
    """
def set_rng_state(seed: typing.SupportsInt | typing.SupportsIndex, offset: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Restores a state from get_rng_state()
    """
def sgd_step(params: collections.abc.Sequence[Tensor], momentum_buffers: collections.abc.Sequence[Tensor | None], lr: typing.SupportsFloat | typing.SupportsIndex, momentum: typing.SupportsFloat | typing.SupportsIndex = 0.0, dampening: typing.SupportsFloat | typing.SupportsIndex = 0.0, weight_decay: typing.SupportsFloat | typing.SupportsIndex = 0.0, nesterov: bool = False) -> list[Tensor | None]:
    """
    One SGD step (torch.optim.SGD, foreach=False); returns the momentum buffers
    """
def sgemm_seconds(M: typing.SupportsInt | typing.SupportsIndex, N: typing.SupportsInt | typing.SupportsIndex, K: typing.SupportsInt | typing.SupportsIndex, trans_a: bool = False, trans_b: bool = False, repeats: typing.SupportsInt | typing.SupportsIndex = 5) -> float:
    """
    Seconds of the fastest of `repeats` raw cblas_sgemm calls on an MxK @ KxN product (benchmark reference)
    """
def sigmoid(a: Tensor) -> Tensor:
    """
    Elementwise 1 / (1 + exp(-a))
    """
def silu(x: Tensor) -> Tensor:
    """
    x * sigmoid(x)
    """
def sin(a: Tensor) -> Tensor:
    """
    Elementwise sine
    """
def softmax(x: Tensor, dim: typing.SupportsInt | typing.SupportsIndex = -1) -> Tensor:
    """
    Softmax along dim
    """
def split(x: Tensor, sizes: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], dim: typing.SupportsInt | typing.SupportsIndex) -> list[Tensor]:
    """
    Pieces of the given sizes along dim (copies)
    """
def sqrt(a: Tensor) -> Tensor:
    """
    Elementwise square root
    """
def sub(a: Tensor, b: Tensor) -> Tensor:
    """
    a - b (broadcasting)
    """
def sum(x: Tensor, dims: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] = [], keepdim: bool = False) -> Tensor:
    """
    Sum over dims (all dims when empty)
    """
def svd(matrix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """
    Thin SVD (U, S, Vh) via LAPACK dgesdd (OpenBLAS), double precision inside
    """
def swiglu(gate: Tensor, up: Tensor) -> Tensor:
    """
    silu(gate) * up as one op
    """
def tanh(a: Tensor) -> Tensor:
    """
    Elementwise tanh
    """
def to_dtype(x: Tensor, dtype: DType) -> Tensor:
    """
    x converted to dtype (differentiable between float types)
    """
def transpose(x: Tensor, dim0: typing.SupportsInt | typing.SupportsIndex, dim1: typing.SupportsInt | typing.SupportsIndex) -> Tensor:
    """
    View with two dims swapped
    """
def where(cond: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """
    cond ? a : b elementwise, the three broadcast together; cond of any dtype (nonzero is true)
    """
def write_safetensors(path: str, plan: collections.abc.Sequence[tuple[str, str, collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]]], produce: collections.abc.Callable, metadata: collections.abc.Mapping[str, str] | None = None) -> None:
    """
    Streams a safetensors file atomically: plan is [(name, dtype, shape)] in file order (dtype 'F32', 'F16', 'BF16', 'I32' or 'I64'); produce(i) returns the numpy array of entry i (bfloat16 as uint16 bits) only when the writer reaches it, so peak memory is one tensor. A wrong byte count is a ValueError.
    """
def zeros(shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], dtype: DType = DType.float32) -> Tensor:
    """
    A new tensor of zeros
    """
