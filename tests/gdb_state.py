"""A gdb Python script: the stopped program's frames, their variables and some globals as
JSON on one line (`gdb -batch -x tests/gdb_state.py`; globals named in $GDB_GLOBALS)."""

import json
import os

import gdb  # provided by gdb itself

gdb.execute("set pagination off")


def _text(evaluate):
    try:
        return str(evaluate())
    except gdb.error as exc:
        return f"<error: {exc}>"


def _frame(frame):
    sal = frame.find_sal()
    where = f"{sal.symtab.filename}:{sal.line}" if sal.symtab is not None else None
    args, local = [], []
    try:
        block = frame.block()
    except RuntimeError:
        block = None
    while block is not None:  # innermost block out to the function, as `info locals`
        for symbol in block:
            if symbol.is_argument:
                args.append([symbol.name, _text(lambda s=symbol: s.value(frame))])
            elif symbol.is_variable:
                local.append([symbol.name, _text(lambda s=symbol: s.value(frame))])
        if block.function is not None:
            break
        block = block.superblock
    return {"function": frame.name(), "pc": frame.pc(), "where": where, "args": args,
            "locals": local}


frames = []
frame = gdb.newest_frame()
while frame is not None and len(frames) < 32:
    frames.append(_frame(frame))
    frame = frame.older()
names = [n for n in os.environ.get("GDB_GLOBALS", "").split(",") if n]
out = {"frames": frames,
       "globals": {n: _text(lambda n=n: gdb.parse_and_eval(n)) for n in names}}
print("JSON:" + json.dumps(out))
