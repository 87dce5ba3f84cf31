import tracemalloc, zlib, json
msg = json.dumps({"type":"message","text":"the deploy is done can you check latency " * 15}).encode()
def measure(wbits, mem):
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    c = zlib.compressobj(wbits=-wbits, memLevel=mem)
    d = zlib.decompressobj(wbits=-wbits)
    out = c.compress(msg) + c.flush(zlib.Z_SYNC_FLUSH)
    back = d.decompress(out)
    assert back == msg
    del out, back
    now = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return now
for w, m in [(12, 5), (15, 8), (15, 5), (12, 8), (9, 1)]:
    print(f"CPython zlib {zlib.ZLIB_VERSION}: window {w}, memLevel {m}: compressor+decompressor {measure(w, m)} bytes")
