#!/usr/bin/env python3
"""fa3_sync_model.py - a model of cuda/cuda_flash_fa3.cu's synchronisation, run on the CPU.

One producer thread and two consumer warpgroups as coroutines; the full/empty mbarrier
rings with their parity waits (mbarrier.try_wait.parity P succeeds once the phase of
parity P completed: fresh barrier, wait(0) blocks, wait(1) passes); TMA loads and wgmma
groups as asynchronous events that complete at random later times (wgmma groups in
commit order, as wgmma.wait_group N means "all but the N newest done"); the optional
named-barrier pingpong (bar.arrive / bar.sync, 256 threads). Random interleavings for
ST = 2, 3, pingpong off / on, 1..9 key tiles (a split part has >= 1 tile); it checks
deadlock freedom, that every GEMM reads the tile it expects, and that no TMA write lands
in a stage a GEMM still reads. The kernel's step order is copied by hand: change both
together. Mutating a parity or the pingpong kick-off makes it fail (checked when it was
written), so it can fail. Exit status 0: no failure.

usage: python3 tests/gpu/fa3_sync_model.py [seeds per config, default 100]
"""
import random, sys

class MBar:
    def __init__(s, count): s.count=count; s.pend=count; s.tx=0; s.done=0
    def arrive(s, tx=0):
        s.pend-=1; s.tx+=tx; assert s.pend>=0, "too many arrivals"; s.chk()
    def complete_tx(s, b): s.tx-=b; s.chk()
    def chk(s):
        if s.pend==0 and s.tx==0: s.done+=1; s.pend=s.count
    def ok(s, parity): return (s.done & 1) != parity

class NBar:
    def __init__(s): s.cnt=0; s.gen=0
    def arrive(s):
        s.cnt+=128
        if s.cnt==256: s.cnt=0; s.gen+=1
        return s.gen

def run(ST, pp, ntiles, seed):
    rnd=random.Random(seed)
    kf=[MBar(1) for _ in range(ST)]; vf=[MBar(1) for _ in range(ST)]
    ke=[MBar(256) for _ in range(ST)]; ve=[MBar(256) for _ in range(ST)]
    qf=MBar(1)
    content={('K',s):None for s in range(ST)}; content.update({('V',s):None for s in range(ST)})
    readers={k:set() for k in content}
    writing={k:False for k in content}
    nb={1:NBar(),2:NBar()}
    asyncq=[]  # pending async events (callables)
    def tma(kind, s, t, bar):
        key=(kind,s)
        assert not readers[key], f"TMA write into {key} (tile {t}) while read by {readers[key]}"
        writing[key]=True
        def fin():
            content[key]=t; writing[key]=False; bar.complete_tx(1)
        asyncq.append(fin)
    def producer():
        qf.arrive(1); asyncq.append(lambda: qf.complete_tx(1))
        def load(t, isk):
            s=t%ST
            if t>=ST:
                e=(ke if isk else ve)[s]; par=((t//ST)-1)&1
                while not e.ok(par): yield
            f=(kf if isk else vf)[s]; f.arrive(1)
            tma('K' if isk else 'V', s, t, f)
        yield from load(0, True)
        for t in range(ntiles):
            if t+1<ntiles: yield from load(t+1, True)
            yield from load(t, False)
    def consumer(cw):
        name=f"c{cw}"
        groups=[]  # list of (set of keys read, done flag holder)
        def nsync(i):
            g=nb[i].gen; nb[i].arrive()
            while nb[i].gen==g: yield
        def narr(i): nb[i].arrive()
        def issue(keys):
            for k,t in keys:
                assert content[k]==t and not writing[k], f"{name} reads {k} expecting tile {t}, has {content[k]} writing={writing[k]}"
                readers[k].add(name)
            st={'done':False,'keys':keys}
            groups.append(st)
            def fin():
                st['done']=True
            asyncq.append(fin)
        def wait(n):
            # wgmma.wait_group n: every group but the n most recent is complete
            while not all(g['done'] for g in groups[:max(0,len(groups)-n)]): yield
            for g in list(groups[:max(0,len(groups)-n)]):
                if True:
                    for k,t in g['keys']:
                        assert content[k]==t, f"{name}: {k} changed under the GEMM"
                        readers[k].discard(name)
                    groups.remove(g)
        def arrive128(bar):  # 128 threads arrive
            for _ in range(128): bar.arrive()
        if pp and cw==0: narr(1)
        while not qf.ok(0): yield
        while not kf[0].ok(0): yield
        if pp: yield from nsync(1+cw)
        issue([(('K',0),0)])
        if pp: narr(2-cw)
        yield from wait(0)
        arrive128(ke[0])
        for t in range(1,ntiles):
            st=t%ST; sp=(t-1)%ST
            while not kf[st].ok((t//ST)&1): yield
            if pp: yield from nsync(1+cw)
            issue([(('K',st),t)])
            while not vf[sp].ok(((t-1)//ST)&1): yield
            issue([(('V',sp),t-1)])
            if pp: narr(2-cw)
            yield from wait(1)
            arrive128(ke[st])
            yield  # softmax
            yield from wait(0)
            arrive128(ve[sp])
        sp=(ntiles-1)%ST
        while not vf[sp].ok(((ntiles-1)//ST)&1): yield
        if pp: yield from nsync(1+cw)
        issue([(('V',sp),ntiles-1)])
        if pp: narr(2-cw)
        yield from wait(0)
        arrive128(ve[sp])
    actors={'p':producer(),'c0':consumer(0),'c1':consumer(1)}
    steps=0
    while actors or asyncq:
        steps+=1
        if steps>200000: raise Exception("livelock/deadlock (step limit)")
        choices=list(actors.keys())+(['async'] if asyncq else [])
        c=rnd.choice(choices)
        if c=='async':
            f=asyncq.pop(rnd.randrange(len(asyncq))); f(); continue
        try: next(actors[c])
        except StopIteration: del actors[c]
    return True

seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 100
bad=0
for ST in (2,3):
    for pp in (0,1):
        for nt in range(1,10):
            for seed in range(seeds):
                try: run(ST,pp,nt,seed)
                except Exception as e:
                    bad+=1
                    if bad<5: print("FAIL ST",ST,"pp",pp,"ntiles",nt,"seed",seed,":",e)
print("fa3_sync_model: %d configs x %d seeds, failures: %d" % (2 * 2 * 9, seeds, bad))
sys.exit(1 if bad else 0)
