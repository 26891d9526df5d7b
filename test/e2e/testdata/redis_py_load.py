"""The workload of TestClientLibrariesNoticeNoFailover (clients_test.go) with redis-py at its defaults.

It runs through the proxy at argv[1] (password argv[2], key prefix argv[3]) and talks to the test on
its standard streams: it prints "ready" once every part runs; "idle" on stdin makes the idle connections
answer a PING again and pushes the item a BLPOP with no timeout waits for; "stop" ends it, and it prints
what it saw as one JSON line.
"""
import json
import sys
import threading
import time

import redis

host, port = sys.argv[1].rsplit(":", 1)
password, prefix = sys.argv[2], sys.argv[3]
stop = threading.Event()
lock = threading.Lock()
seen = {"errors": 0, "first": [], "writes": [], "incrs": [], "pubs": [], "heard": [], "pushed": [], "popped": []}


def client(**kw):
    return redis.Redis(host=host, port=int(port), password=password, **kw)


def fail(what, err):
    with lock:
        seen["errors"] += 1
        if len(seen["first"]) < 5:
            seen["first"].append("%s: %r" % (what, err))


def note(kind, value):
    with lock:
        seen[kind].append(value)


def writer(w):
    r, n = client(), 0
    while not stop.is_set():
        key = "%sw%d:%d" % (prefix, w, n)
        try:
            r.set(key, n)
            note("writes", key)
        except redis.RedisError as e:
            fail("SET", e)
        n += 1


def transactions():
    r = client()
    while not stop.is_set():
        try:
            pipe = r.pipeline(transaction=True)
            pipe.incr(prefix + "tx-counter")
            note("incrs", pipe.execute()[0])
        except redis.RedisError as e:
            fail("MULTI/INCR/EXEC", e)
        time.sleep(0.001)


def subscriber(p):
    while not stop.is_set():
        try:
            msg = p.get_message(timeout=0.5)
        except redis.RedisError as e:
            fail("subscriber", e)
            time.sleep(0.05)
            continue
        if msg and msg["type"] == "message":
            note("heard", int(msg["data"]))


def publisher():
    r, n = client(), 0
    while not stop.is_set():
        try:
            r.publish(prefix + "news", n)
            note("pubs", n)
        except redis.RedisError as e:
            fail("PUBLISH", e)
        n += 1
        time.sleep(0.005)


def consumer():
    r = client()
    while not stop.is_set():
        try:
            kv = r.blpop(prefix + "jobs", timeout=2)
        except redis.RedisError as e:
            fail("BLPOP", e)
            continue
        if kv:
            note("popped", int(kv[1]))


def producer():
    r, n = client(), 0
    while not stop.is_set():
        try:
            r.rpush(prefix + "jobs", n)
            note("pushed", n)
        except redis.RedisError as e:
            fail("RPUSH", e)
        n += 1
        time.sleep(0.02)


def late_consumer(r):
    try:
        kv = r.blpop(prefix + "late-job", timeout=0)
        if kv:
            note("popped", int(kv[1]))
    except redis.RedisError as e:
        if not stop.is_set():
            fail("BLPOP waiting at the cut", e)


def main():
    sub = client().pubsub()
    sub.subscribe(prefix + "news")
    sub.get_message(timeout=1)  # the confirmation
    late = client()
    late.ping()
    idle = [client(single_connection_client=True) for _ in range(20)]
    for r in idle:
        r.ping()
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=f) for f in (transactions, publisher, consumer, producer)]
    threads.append(threading.Thread(target=subscriber, args=(sub,)))
    threads.append(threading.Thread(target=late_consumer, args=(late,), daemon=True))
    for t in threads:
        t.start()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "idle":
            for r in idle:
                try:
                    r.ping()
                except redis.RedisError as e:
                    fail("idle connection after", e)
            try:
                client().rpush(prefix + "late-job", -1)
                note("pushed", -1)
            except redis.RedisError as e:
                fail("RPUSH late-job", e)
        elif line.strip() == "stop":
            break
    stop.set()
    for t in threads[:-1]:
        t.join()
    print(json.dumps(seen), flush=True)


main()
