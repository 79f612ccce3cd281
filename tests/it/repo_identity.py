"""A product repository's NATS identity seen from outside ghboot (nats-py), for tests/it/repos.rs.

Reads `ghboot repo env NAME --format json` on stdin. Prints one JSON object; exits 1 with the reason.
  fetch STREAM_KEY CONSUMER_KEY      pull everything from the consumer the env names, ack it: {"subjects": [...]}
  refuse OTHER_SUBJECT FORGED_SUBJECT OTHER_STREAM OTHER_CONSUMER
                                     each must be refused: {"subscribe": .., "publish": .., "delete": .., "fetch": ..}
  publish SUBJECT                    publish with a JetStream ack: {"stream": name} or {"refused": reason}
  revoked                            connecting (or fetching) fails with an authorization/permission error
"""
import asyncio, json, sys
import nats


async def connect(env):
    errs = []

    async def ecb(e):
        errs.append(f"{type(e).__name__}: {e}")

    nc = await nats.connect(servers=env["NATS_URL"].split(","), user=env["NATS_USER"], password=env["NATS_PASSWORD"],
                            inbox_prefix=env["NATS_INBOX_PREFIX"], connect_timeout=3, allow_reconnect=False,
                            max_reconnect_attempts=0, error_cb=ecb)
    return nc, errs


def violated(errs, needle):
    return any("permissions violation" in e.lower() and needle.lower() in e.lower() for e in errs)


async def until(pred, secs=3):
    for _ in range(int(secs / 0.05)):
        if pred():
            return True
        await asyncio.sleep(0.05)
    return pred()


async def bind(nc, env, stream, consumer):
    js = nc.jetstream(timeout=3)
    return await js.pull_subscribe_bind(durable=consumer, stream=stream,
                                        inbox_prefix=(env["NATS_INBOX_PREFIX"] + ".").encode())


async def fetch(env, stream_key, consumer_key):
    nc, errs = await connect(env)
    psub = await bind(nc, env, env[stream_key], env[consumer_key])
    got = []
    while True:
        try:
            batch = await psub.fetch(batch=10, timeout=2)
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            break
        for m in batch:
            await m.ack_sync(timeout=3)
        got += batch
    await nc.close()
    return {"subjects": sorted(m.subject for m in got), "errors": errs}


async def refuse(env, other_subject, forged_subject, other_stream, other_consumer):
    out = {}
    nc, errs = await connect(env)
    got = []

    async def cb(m):
        got.append(m.subject)

    await nc.subscribe(other_subject, cb=cb)
    await until(lambda: violated(errs, other_subject))
    out["subscribe"] = violated(errs, other_subject) and not got
    try:
        await nc.request(forged_subject, b"{}", timeout=2)
        out["publish"] = False
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        out["publish"] = await until(lambda: violated(errs, forged_subject))
    try:
        ok = await nc.jetstream(timeout=2).delete_stream(env["GHBOOT_STREAM"])
        out["delete"] = not ok
    except Exception:
        out["delete"] = True
    try:
        psub = await bind(nc, env, other_stream, other_consumer)
        msgs = await psub.fetch(batch=5, timeout=2)
        out["fetch"] = not msgs
    except Exception:
        out["fetch"] = True
    await nc.close()
    return out


async def publish(env, subject):
    nc, errs = await connect(env)
    try:
        ack = await nc.jetstream(timeout=2).publish(subject, b"{}")
        return {"stream": ack.stream}
    except Exception as e:
        await until(lambda: violated(errs, subject))
        return {"refused": "permissions violation" if violated(errs, subject) else type(e).__name__}
    finally:
        await nc.close()


async def revoked(env):
    try:
        nc, errs = await connect(env)
    except Exception as e:
        return {"revoked": "authoriz" in str(e).lower() or "authoriz" in type(e).__name__.lower(), "at": "connect"}
    try:
        psub = await bind(nc, env, env["GHBOOT_STREAM"], env["GHBOOT_CONSUMER"])
        await psub.fetch(batch=1, timeout=2)
    except Exception:
        pass
    await until(lambda: errs)
    await nc.close()
    return {"revoked": any("authoriz" in e.lower() or "permissions violation" in e.lower() for e in errs), "at": "fetch"}


async def main():
    env = json.load(sys.stdin)
    cmd, args = sys.argv[1], sys.argv[2:]
    f = {"fetch": fetch, "refuse": refuse, "publish": publish, "revoked": revoked}[cmd]
    print(json.dumps(await asyncio.wait_for(f(env, *args), 60)))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:
        print(f"{type(e).__name__}: {e}")
        sys.exit(1)
