"""Finding model files: a local folder, or a Hugging Face repo id resolved
through huggingface_hub (its cache; HF_TOKEN from the environment or a .env
file; HF_HUB_OFFLINE honoured)."""
import os


def _token_from_dotenv():
    for folder in (os.getcwd(), os.path.expanduser("~")):
        path = os.path.join(folder, ".env")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if line.startswith("HF_TOKEN="):
                        return line.split("=", 1)[1].strip().strip("'\"")
    return None


def hf_token(token=None):
    return token or os.environ.get("HF_TOKEN") or _token_from_dotenv()


def resolve_file(name_or_path, filename, required=True, token=None, revision=None, cache_dir=None, **_):
    """Path of `filename` for a local folder or a hub repo id; None when
    optional and absent. Errors name the folder or repo and the file."""
    name_or_path = os.fspath(name_or_path)
    if os.path.isdir(name_or_path):
        path = os.path.join(name_or_path, filename)
        if os.path.isfile(path):
            return path
        if required:
            raise FileNotFoundError(f"{name_or_path}: no file named {filename}")
        return None
    if os.path.exists(name_or_path):
        raise ValueError(f"{name_or_path} is a file; pass the folder that contains {filename}")
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        raise FileNotFoundError(f"{name_or_path}: not a local folder, and huggingface_hub is not installed")
    try:
        return hf_hub_download(name_or_path, filename, revision=revision, cache_dir=cache_dir, token=hf_token(token))
    except LocalEntryNotFoundError:  # a subclass of EntryNotFoundError: first
        if not required:
            return None
        raise FileNotFoundError(
            f"{name_or_path}: not a local folder, and {filename} is not in the Hugging Face cache "
            "(offline, or the hub cannot be reached)") from None
    except EntryNotFoundError:
        if required:
            raise FileNotFoundError(f"{name_or_path}: the repository has no file named {filename}") from None
        return None
    except Exception as e:  # noqa: BLE001 - repository errors: say which repo
        if not required:
            return None
        raise FileNotFoundError(f"{name_or_path}: cannot fetch {filename}: {e}") from None
