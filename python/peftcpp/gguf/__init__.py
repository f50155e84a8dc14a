"""GGUF (llama.cpp's format): export and reading.

    from peftcpp.gguf import convert, export_adapter, write_modelfile, quantize, GGUFFile
    convert("my-model/", "my-model.f16.gguf", outtype="f16")
    quantize("my-model.f16.gguf", "my-model.Q4_K_M.gguf", ftype="Q4_K_M")
    export_adapter("my-adapter/", "my-adapter.gguf")
    write_modelfile("my-model.Q4_K_M.gguf", chat_template)

``convert`` is both a submodule and a function: the name is bound to the
function here, after the submodule is imported.
"""
from .reader import GGUFFile, TensorInfo
from .vocab import vocab_metadata, detect_pre_tokenizer
from .convert import convert, GGUFExportError, SUPPORTED_ARCHS
from .adapter import export_adapter
from .modelfile import write_modelfile, modelfile_text
from .tensor_quantization import quantize_tensor, dequantize_tensor
from .file_quantization import quantize

__all__ = ["GGUFFile", "TensorInfo", "vocab_metadata", "detect_pre_tokenizer", "convert", "GGUFExportError",
           "SUPPORTED_ARCHS", "export_adapter", "write_modelfile", "modelfile_text", "quantize_tensor",
           "dequantize_tensor", "quantize"]
