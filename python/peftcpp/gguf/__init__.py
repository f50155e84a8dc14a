"""GGUF (llama.cpp's format): both directions, reading and quantization.

    from peftcpp.gguf import convert, export_adapter, write_modelfile, quantize, GGUFFile
    convert("my-model/", "my-model.f16.gguf", outtype="f16")
    quantize("my-model.f16.gguf", "my-model.Q4_K_M.gguf", ftype="Q4_K_M")
    export_adapter("my-adapter/", "my-adapter.gguf")
    write_modelfile("my-model.Q4_K_M.gguf", chat_template)
    import_gguf("model.Q4_1.gguf", "hf-folder/")        # GGUF -> Hugging Face folder

``convert`` is both a submodule and a function: the name is bound to the
function here, after the submodule is imported.
"""
from .reader import GGUFFile, TensorInfo
from .vocab import vocab_metadata, detect_pre_tokenizer
from .names import GGUFExportError, GGUFImportError
from .import_model import import_gguf, gguf_model_path
from .convert import convert, SUPPORTED_ARCHS
from .adapter import export_adapter
from .modelfile import write_modelfile, modelfile_text
from .tensor_quantization import quantize_tensor, dequantize_tensor
from .file_quantization import quantize

__all__ = ["GGUFFile", "TensorInfo", "vocab_metadata", "detect_pre_tokenizer", "convert", "GGUFExportError", "GGUFImportError",
           "import_gguf", "gguf_model_path",
           "SUPPORTED_ARCHS", "export_adapter", "write_modelfile", "modelfile_text", "quantize_tensor",
           "dequantize_tensor", "quantize"]
