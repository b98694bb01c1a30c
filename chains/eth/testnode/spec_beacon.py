"""softstake's Ethereum consensus layer for tests: the executable spec.

The beacon state is the consensus spec's own (PyPI `eth-consensus-specs`,
Electra, minimal preset), and every change to it is the spec's own
function:
- each slot, `process_slots` (with it, at each epoch boundary, the spec's
  rewards and penalties, justification and finality, `process_pending_
  deposits`, registry updates, effective balances);
- each slot's block: `get_expected_withdrawals` + `process_withdrawals`
  (partial withdrawals queued by EIP-7002 first, then the sweep), then the
  execution requests of that block's payload: `process_deposit_request` for
  every DepositEvent the deposit contract logged in it (its BLS signature
  checked by the spec when the deposit is applied) and
  `process_withdrawal_request` for every request the EIP-7002 contract's
  system call dequeues (the real churn, exit queue and partial-withdrawal
  queue).

The execution layer is a real anvil started without automine: this node
mines exactly one execution block per slot (`evm_mine` at the slot's
time), with the proposer's fee recipient as coinbase, and credits the
block's withdrawals to their addresses before mining it (anvil has no
withdrawals of its own). So a beacon block's payload and the execution
block it names are the same moment, as on mainnet.

What this file adds around the spec, and only that:
- attestations: every active validator is marked as having attested
  timely to source, target and head (participation flags set before each
  slot), so rewards, justification and finality follow from the spec
  instead of being written in; no blocks carry attestations;
- block headers: blocks are not signed, and the state's block roots are
  the empty-slot roots `process_slots` leaves;
- a validator's fee recipient is the address in its 0x01/0x02 withdrawal
  credentials (others': 0xee..ee); with --mev-every N, every Nth block
  such a validator proposes is built by a builder (MEV-boost): the
  builder (0xb0..b0) is the coinbase and pays the fee recipient 0.01 ETH
  in the block's last transaction;
- config: the genesis fork version of the deposit data, the slot length
  and genesis time (at least the execution chain's newest block), and (for
  test speed) SHARD_COMMITTEE_PERIOD and MIN_VALIDATOR_WITHDRAWABILITY_DELAY
  as given; the rest is the minimal preset and config.

Beacon API endpoints served (shapes from ethereum/beacon-APIs; the Rust
side checks every answer against the pinned document): genesis, config
spec, headers/head, states/{id}/validators (GET and POST, ids and
statuses), v2 blocks/{id}, states/{id}/pending_deposits,
states/{id}/pending_partial_withdrawals. Test controls: POST /test/slots
{"n": N} advances N slots; POST /test/mine mines an execution block
between two slots (its requests go to the next beacon block); GET
/test/queue the exit queue's own fields.

Prints "listening on PORT" once it serves.
"""

import argparse
import json
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from eth_consensus_specs.electra import minimal as spec
from eth_consensus_specs.test.helpers.genesis import create_genesis_state
from remerkleable.basic import boolean, uint
from remerkleable.bitfields import Bitlist, Bitvector
from remerkleable.byte_arrays import ByteList, ByteVector
from remerkleable.complex import Container, List, Vector

SYSTEM = "0xfffffffffffffffffffffffffffffffffffffffe"
OTHERS = "0x" + "ee" * 20
BUILDER = "0x" + "b0" * 20
# What the builder pays the proposer's fee recipient for a block.
BUILDER_PAYMENT = 10**16
FAR = 2**64 - 1
GWEI = 10**9
# DepositEvent(bytes,bytes,bytes,bytes,bytes)
DEPOSIT_TOPIC = "0x649bbc62d0e31342afea4e5cd82d4049e7e1ee912fc0889aa790803be39038c5"


def to_json(v):
    """An SSZ value in the Beacon API's JSON form: integers as decimal
    strings, byte strings and bitfields as 0x-hex, containers as objects."""
    if isinstance(v, boolean):
        return bool(v)
    if isinstance(v, uint):
        return str(int(v))
    if isinstance(v, (ByteVector, ByteList)):
        return "0x" + bytes(v).hex()
    if isinstance(v, (Bitlist, Bitvector)):
        return "0x" + v.encode_bytes().hex()
    if isinstance(v, Container):
        return {k: to_json(getattr(v, k)) for k in type(v).fields().keys()}
    if isinstance(v, (List, Vector)):
        return [to_json(x) for x in v]
    raise TypeError(f"no JSON form for {type(v)}")


def status(v, epoch, balance):
    """The Beacon API's validator status (beacon-APIs, validator-flow)."""
    if v.activation_epoch > epoch:
        return "pending_initialized" if v.activation_eligibility_epoch == FAR else "pending_queued"
    if v.activation_epoch <= epoch < v.exit_epoch:
        if v.exit_epoch == FAR:
            return "active_ongoing"
        return "active_slashed" if v.slashed else "active_exiting"
    if v.exit_epoch <= epoch < v.withdrawable_epoch:
        return "exited_slashed" if v.slashed else "exited_unslashed"
    return "withdrawal_possible" if balance > 0 else "withdrawal_done"


class Rpc:
    def __init__(self, url):
        self.url = url
        self.id = 0

    def __call__(self, method, params):
        self.id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params})
        req = urllib.request.Request(
            self.url, body.encode(), {"content-type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            out = json.loads(r.read())
        if "error" in out:
            raise RuntimeError(f"{method}: {out['error']}")
        return out["result"]


class Chain:
    def __init__(self, a):
        spec.config = spec.config._replace(
            GENESIS_FORK_VERSION=bytes.fromhex(a.fork_version.removeprefix("0x")),
            SHARD_COMMITTEE_PERIOD=a.shard_committee_period,
            MIN_VALIDATOR_WITHDRAWABILITY_DELAY=a.withdrawability_delay,
            SLOT_DURATION_MS=a.slot_secs * 1000,
        )
        self.el = Rpc(a.execution)
        self.deposit_contract = a.deposit_contract.lower()
        self.requests_contract = a.requests_contract
        self.lock = threading.Lock()
        state = create_genesis_state(
            spec, [spec.MIN_ACTIVATION_BALANCE] * a.validators, spec.MIN_ACTIVATION_BALANCE
        )
        # The execution chain's time decides genesis: slot 0 is its newest
        # block, each slot after it one block SECONDS_PER_SLOT later.
        latest = self.el("eth_getBlockByNumber", ["latest", False])
        self.sps = spec.config.SLOT_DURATION_MS // 1000
        state.genesis_time = max(a.genesis_time, int(latest["timestamp"], 16))
        # The last execution block whose requests the beacon chain took.
        self.taken = int(latest["number"], 16)
        self.state = state
        self.states = {0: state.copy()}
        self.blocks = {}
        self.mev_every = a.mev_every
        self.proposals = 0
        for who in (SYSTEM, BUILDER):
            self.el("anvil_impersonateAccount", [who])
            self.el("anvil_setBalance", [who, hex(10**21)])

    def epoch(self, st):
        return spec.get_current_epoch(st)

    def fee_recipient(self, index):
        wc = bytes(self.state.validators[index].withdrawal_credentials)
        if wc[0] in (1, 2):
            return "0x" + wc[12:].hex()
        return OTHERS

    def step(self):
        st = self.state
        # Everyone active attested in time during the slot now ending.
        full = spec.ParticipationFlags(0b111)
        epoch = self.epoch(st)
        for i, v in enumerate(st.validators):
            if spec.is_active_validator(v, epoch):
                st.current_epoch_participation[i] = full
        spec.process_slots(st, st.slot + 1)
        slot = int(st.slot)
        proposer = int(spec.get_beacon_proposer_index(st))
        # Withdrawals of this block, credited on the execution layer in the
        # block that carries them.
        expected = spec.get_expected_withdrawals(st)
        credit = {}
        for w in expected.withdrawals:
            addr = "0x" + bytes(w.address).hex()
            credit[addr] = credit.get(addr, 0) + int(w.amount) * GWEI
        for addr, wei in credit.items():
            bal = int(self.el("eth_getBalance", [addr, "latest"]), 16)
            self.el("anvil_setBalance", [addr, hex(bal + wei)])
        t = int(st.genesis_time) + slot * self.sps
        recipient = self.fee_recipient(proposer)
        coinbase = recipient
        if recipient != OTHERS and self.mev_every:
            self.proposals += 1
            if self.proposals % self.mev_every == 0:
                # MEV-boost: the builder is the block's coinbase and pays
                # the proposer's fee recipient in the block's last
                # transaction (no tip, so everything else goes first).
                coinbase = BUILDER
                base = int(self.el("eth_getBlockByNumber", ["latest", False]).get("baseFeePerGas", "0x0"), 16)
                self.el(
                    "eth_sendTransaction",
                    [
                        {
                            "from": BUILDER,
                            "to": recipient,
                            "value": hex(BUILDER_PAYMENT),
                            "gas": hex(21000),
                            "maxPriorityFeePerGas": "0x0",
                            "maxFeePerGas": hex(base * 2 + 1),
                        }
                    ],
                )
        self.el("anvil_setCoinbase", [coinbase])
        self.el("evm_mine", [t])
        block = self.el("eth_getBlockByNumber", ["latest", False])
        number = int(block["number"], 16)
        # EIP-7002: the system call after the block's transactions dequeues
        # the requests queued up to and including this block; they are this
        # beacon block's requests. anvil has no system calls, so the call
        # is read at the block's state and the dequeue itself is sent as a
        # transaction that the next block runs first (the highest tip),
        # before anything can queue behind it.
        out = self.el("eth_call", [{"from": SYSTEM, "to": self.requests_contract, "data": "0x"}, hex(number)])
        raw = bytes.fromhex(out.removeprefix("0x"))
        if raw:
            self.el(
                "eth_sendTransaction",
                [
                    {
                        "from": SYSTEM,
                        "to": self.requests_contract,
                        "data": "0x",
                        "gas": "0x100000",
                        "maxPriorityFeePerGas": hex(10**12),
                        "maxFeePerGas": hex(10**13),
                    }
                ],
            )
        payload = spec.ExecutionPayload(
            parent_hash=bytes.fromhex(block["parentHash"][2:]),
            fee_recipient=bytes.fromhex(coinbase[2:]),
            state_root=bytes.fromhex(block["stateRoot"][2:]),
            receipts_root=bytes.fromhex(block["receiptsRoot"][2:]),
            block_number=number,
            gas_limit=int(block["gasLimit"], 16),
            gas_used=int(block["gasUsed"], 16),
            timestamp=int(block["timestamp"], 16),
            base_fee_per_gas=int(block.get("baseFeePerGas", "0x0"), 16),
            block_hash=bytes.fromhex(block["hash"][2:]),
            withdrawals=expected.withdrawals,
        )
        spec.process_withdrawals(st, payload)
        # The block's execution requests.
        deposits = []
        logs = self.el(
            "eth_getLogs",
            [{"address": self.deposit_contract, "fromBlock": hex(self.taken + 1), "toBlock": hex(number)}],
        )
        self.taken = number
        for log in logs:
            data = bytes.fromhex(log["data"][2:])

            def field(i):
                off = int.from_bytes(data[i * 32 : i * 32 + 32], "big")
                n = int.from_bytes(data[off : off + 32], "big")
                return data[off + 32 : off + 32 + n]

            deposits.append(
                spec.DepositRequest(
                    pubkey=field(0),
                    withdrawal_credentials=field(1),
                    amount=int.from_bytes(field(2), "little"),
                    signature=field(3),
                    index=int.from_bytes(field(4), "little"),
                )
            )
        withdrawals = [
            spec.WithdrawalRequest(
                source_address=raw[i : i + 20],
                validator_pubkey=raw[i + 20 : i + 68],
                amount=int.from_bytes(raw[i + 68 : i + 76], "big"),
            )
            for i in range(0, len(raw), 76)
        ]
        for d in deposits:
            spec.process_deposit_request(st, d)
        for w in withdrawals:
            spec.process_withdrawal_request(st, w)
        body = spec.BeaconBlockBody(
            execution_payload=payload,
            execution_requests=spec.ExecutionRequests(deposits=deposits, withdrawals=withdrawals),
        )
        msg = spec.BeaconBlock(
            slot=slot,
            proposer_index=proposer,
            parent_root=spec.hash_tree_root(st.latest_block_header),
            state_root=spec.hash_tree_root(st),
            body=body,
        )
        self.blocks[slot] = {
            "version": "electra",
            "execution_optimistic": False,
            "finalized": False,
            "data": {"message": to_json(msg), "signature": "0x" + "00" * 96},
        }
        self.states[slot] = st.copy()
        for old in [s for s in self.states if s < slot - 512]:
            del self.states[old]

    def mine_between_slots(self):
        """An execution block between two slots (what the devnet's nudge
        asks for: its mempool included without moving time by a slot). Its
        deposits and EIP-7002 requests are taken by the next slot's beacon
        block (the system call there dequeues everything queued so far)."""
        latest = self.el("eth_getBlockByNumber", ["latest", False])
        t = int(latest["timestamp"], 16) + 1
        nxt = int(self.state.genesis_time) + (int(self.state.slot) + 1) * self.sps
        if t >= nxt:
            return False
        self.el("anvil_setCoinbase", [OTHERS])
        self.el("evm_mine", [t])
        return True

    def state_at(self, sid):
        if sid in ("head", "justified"):
            return self.state
        if sid == "finalized":
            s = int(self.state.finalized_checkpoint.epoch) * spec.SLOTS_PER_EPOCH
            return self.states.get(min(self.states, key=lambda x: abs(x - s)))
        if sid == "genesis":
            return self.states.get(0)
        try:
            n = int(sid)
        except ValueError:
            return None
        if n > int(self.state.slot):
            return None
        older = [s for s in self.states if s <= n]
        return self.states[max(older)] if older else None

    def envelope(self, data, st):
        fin = int(st.slot) <= int(self.state.finalized_checkpoint.epoch) * spec.SLOTS_PER_EPOCH
        return {"execution_optimistic": False, "finalized": fin, "data": data}

    def validators(self, st, ids, statuses):
        epoch = self.epoch(st)
        out = []
        want = None
        if ids:
            want = set()
            for x in ids:
                x = str(x).lower()
                if x.startswith("0x"):
                    want.add(x)
                else:
                    want.add(int(x))
        for i, v in enumerate(st.validators):
            pk = "0x" + bytes(v.pubkey).hex()
            if want is not None and i not in want and pk not in want:
                continue
            bal = int(st.balances[i])
            s = status(v, epoch, bal)
            if statuses and s not in statuses and s.split("_")[0] not in statuses:
                continue
            out.append(
                {"index": str(i), "balance": str(bal), "status": s, "validator": to_json(v)}
            )
        return out

    def queue(self):
        st = self.state
        return {
            "epoch": str(int(self.epoch(st))),
            "earliest_exit_epoch": str(int(st.earliest_exit_epoch)),
            "exit_balance_to_consume": str(int(st.exit_balance_to_consume)),
            "activation_exit_churn_limit": str(int(spec.get_activation_exit_churn_limit(st))),
            "finalized_epoch": str(int(st.finalized_checkpoint.epoch)),
        }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--execution", required=True)
    p.add_argument("--deposit-contract", required=True)
    p.add_argument("--requests-contract", required=True)
    p.add_argument("--fork-version", default="0x10000038")
    p.add_argument("--validators", type=int, default=64)
    p.add_argument("--shard-committee-period", type=int, default=4)
    p.add_argument("--withdrawability-delay", type=int, default=4)
    p.add_argument("--slot-secs", type=int, default=6)
    p.add_argument("--genesis-time", type=int, default=0)
    p.add_argument("--mev-every", type=int, default=0)
    a = p.parse_args()
    chain = Chain(a)

    class H(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def missing(self, what):
            self.send(404, {"code": 404, "message": f"{what} not found"})

        def body(self):
            n = int(self.headers.get("content-length") or 0)
            return json.loads(self.rfile.read(n) or b"null") if n else None

        def route(self, method):
            path, _, query = self.path.partition("?")
            parts = path.strip("/").split("/")
            with chain.lock:
                st = chain.state
                if method == "POST" and path == "/test/slots":
                    n = int((self.body() or {}).get("n", 1))
                    for _ in range(n):
                        chain.step()
                    return self.send(200, {"head": str(int(chain.state.slot))})
                if method == "POST" and path == "/test/mine":
                    return self.send(200, {"mined": chain.mine_between_slots()})
                if path == "/test/queue":
                    return self.send(200, chain.queue())
                if path == "/eth/v1/beacon/genesis":
                    return self.send(
                        200,
                        {
                            "data": {
                                "genesis_time": str(int(st.genesis_time)),
                                "genesis_validators_root": "0x" + bytes(st.genesis_validators_root).hex(),
                                "genesis_fork_version": "0x" + bytes(spec.config.GENESIS_FORK_VERSION).hex(),
                            }
                        },
                    )
                if path == "/eth/v1/config/spec":
                    data = {
                        "SECONDS_PER_SLOT": str(chain.sps),
                        "SLOTS_PER_EPOCH": str(int(spec.SLOTS_PER_EPOCH)),
                        "MAX_SEED_LOOKAHEAD": str(int(spec.MAX_SEED_LOOKAHEAD)),
                        "MIN_VALIDATOR_WITHDRAWABILITY_DELAY": str(int(spec.config.MIN_VALIDATOR_WITHDRAWABILITY_DELAY)),
                        "SHARD_COMMITTEE_PERIOD": str(int(spec.config.SHARD_COMMITTEE_PERIOD)),
                        "MIN_PER_EPOCH_CHURN_LIMIT_ELECTRA": str(int(spec.config.MIN_PER_EPOCH_CHURN_LIMIT_ELECTRA)),
                        "MAX_PER_EPOCH_ACTIVATION_EXIT_CHURN_LIMIT": str(int(spec.config.MAX_PER_EPOCH_ACTIVATION_EXIT_CHURN_LIMIT)),
                        "CHURN_LIMIT_QUOTIENT": str(int(spec.config.CHURN_LIMIT_QUOTIENT)),
                        "EFFECTIVE_BALANCE_INCREMENT": str(int(spec.EFFECTIVE_BALANCE_INCREMENT)),
                        "MAX_EFFECTIVE_BALANCE": str(int(spec.MAX_EFFECTIVE_BALANCE)),
                        "MAX_EFFECTIVE_BALANCE_ELECTRA": str(int(spec.MAX_EFFECTIVE_BALANCE_ELECTRA)),
                        "MIN_ACTIVATION_BALANCE": str(int(spec.MIN_ACTIVATION_BALANCE)),
                        "GENESIS_FORK_VERSION": "0x" + bytes(spec.config.GENESIS_FORK_VERSION).hex(),
                        "ELECTRA_FORK_VERSION": "0x" + bytes(spec.config.ELECTRA_FORK_VERSION).hex(),
                        "ELECTRA_FORK_EPOCH": str(int(spec.config.ELECTRA_FORK_EPOCH)),
                        "PRESET_BASE": "minimal",
                    }
                    return self.send(200, {"data": data})
                if path == "/eth/v1/beacon/headers/head":
                    slot = int(st.slot)
                    b = chain.blocks.get(slot)
                    if b is None:
                        hdr = st.latest_block_header.copy()
                        hdr.slot = slot
                    else:
                        m = b["data"]["message"]
                        hdr = spec.BeaconBlockHeader(
                            slot=slot,
                            proposer_index=int(m["proposer_index"]),
                            parent_root=bytes.fromhex(m["parent_root"][2:]),
                            state_root=bytes.fromhex(m["state_root"][2:]),
                            body_root=spec.hash_tree_root(spec.BeaconBlockBody()),
                        )
                    return self.send(
                        200,
                        chain.envelope(
                            {
                                "root": "0x" + bytes(spec.hash_tree_root(hdr)).hex(),
                                "canonical": True,
                                "header": {"message": to_json(hdr), "signature": "0x" + "00" * 96},
                            },
                            st,
                        ),
                    )
                if len(parts) == 5 and parts[:3] == ["eth", "v2", "beacon"] and parts[3] == "blocks":
                    sid = parts[4]
                    slot = int(st.slot) if sid == "head" else (int(sid) if sid.isdigit() else -1)
                    b = chain.blocks.get(slot)
                    if b is None:
                        return self.missing(f"block {sid}")
                    return self.send(200, b)
                if len(parts) == 6 and parts[:4] == ["eth", "v1", "beacon", "states"]:
                    at = chain.state_at(parts[4])
                    if at is None:
                        return self.missing(f"state {parts[4]}")
                    what = parts[5]
                    if what == "validators":
                        ids, statuses = [], []
                        if method == "POST":
                            b = self.body() or {}
                            ids, statuses = b.get("ids") or [], b.get("statuses") or []
                        else:
                            for kv in query.split("&"):
                                k, _, v = kv.partition("=")
                                if k == "id":
                                    ids += v.split(",")
                                if k == "status":
                                    statuses += v.split(",")
                        return self.send(200, chain.envelope(chain.validators(at, ids, statuses), at))
                    if what == "pending_deposits":
                        r = chain.envelope([to_json(d) for d in at.pending_deposits], at)
                        return self.send(200, {"version": "electra", **r})
                    if what == "pending_partial_withdrawals":
                        r = chain.envelope([to_json(w) for w in at.pending_partial_withdrawals], at)
                        return self.send(200, {"version": "electra", **r})
                return self.missing(path)

        def do_GET(self):
            self.route("GET")

        def do_POST(self):
            self.route("POST")

    srv = ThreadingHTTPServer(("127.0.0.1", a.port), H)
    print(f"listening on {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
