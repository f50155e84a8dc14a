"""When a row is finished: its eos ids, or a stop string in its text."""
import numpy as np


def eos_list(eos):
    """eos_token_id (an id, a list of ids or None) as a list without repeats."""
    if eos is None:
        return []
    if isinstance(eos, (list, tuple, set, np.ndarray)):
        out = []
        for e in eos:
            if int(e) not in out:
                out.append(int(e))
        return out
    return [int(eos)]


def stop_string_hit(tokenizer, seq, stop_strings, window):
    """transformers' StopStringCriteria: a stop string occurs in the text and
    overlaps the final token. Only the last `window` tokens are decoded."""
    tail = seq[-window:]
    text = tokenizer.decode(tail)
    prev = tokenizer.decode(tail[:-1]) if len(tail) > 1 else ""
    n = 0
    while n < min(len(prev), len(text)) and prev[n] == text[n]:
        n += 1  # the final token's text starts at n
    for s in stop_strings:
        start = text.find(s, max(0, n - len(s) + 1))
        if start >= 0:
            return True
    return False
