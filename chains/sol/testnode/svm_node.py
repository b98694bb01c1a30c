"""softstake's Solana test node: the real SVM behind JSON-RPC.

LiteSVM (PyPI `solders`) executes every transaction with the real system,
vote and stake programs (the stake program is the on-chain BPF build), with
signature verification on. This file adds what a validator adds around
them, and only that:

- the JSON-RPC methods the adapter calls (getProgramAccounts,
  getAccountInfo, getBalance, getEpochInfo, getEpochSchedule,
  getLatestBlockhash, isBlockhashValid, sendTransaction with preflight,
  getSignatureStatuses, getInflationReward, getVoteAccounts,
  getStakeMinimumDelegation (asked of the stake program itself),
  getMinimumBalanceForRentExemption, getBlockTime, getBlocksWithLimit,
  getGenesisHash, getSlot, getHealth, getRecentPrioritizationFees,
  simulateTransaction: LiteSVM's own simulation, its compute units and
  error in the RPC's shapes);
- a priority-fee market: a price per compute unit a leader under load
  requires (`test_setPriorityMarket`): getRecentPrioritizationFees reports
  it for the recent slots, and a transaction paying less (its
  ComputeBudget SetComputeUnitPrice, or none) is answered with its
  signature and then dropped, as a leader drops what it cannot schedule;
- slots, blockhashes that expire after 150 blocks, and epoch boundaries:
  at each boundary the StakeHistory sysvar gets the cluster's entry for
  the finished epoch (every stake account's warm-up/cool-down computed
  like the stake interface's `stake_activating_and_deactivating_v2`, plus
  a configurable amount of other validators' effective stake), and
  inflation rewards for that epoch are paid into each delegated stake
  account (lamports and delegated stake) after the vote account's
  commission. The reward is `effective stake x rate` rather than the
  vote-credit points formula: which validator earns how much is not what
  the adapter decides; where the reward lands, and what getInflationReward
  says about it, is.
- test controls (`test_*` methods): advance slots/epochs, create vote
  accounts (through the real vote program), mark one delinquent, airdrop,
  drop the next N sendTransaction calls after answering (a lost
  transaction), or hold them until released (a transaction still pending).

Usage: python svm_node.py [--port N] [--slots-per-epoch N] ... ; prints
`listening on PORT` once ready.
"""

import argparse
import base64
import json
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import base58_shim as b58
from solders.account import Account
from solders.clock import Clock
from solders.epoch_schedule import EpochSchedule
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.stake_history import StakeHistory, StakeHistoryEntry
from solders.sysvar import CLOCK, RENT
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders import system_program as sp

STAKE = Pubkey.from_string("Stake11111111111111111111111111111111111111")
VOTE = Pubkey.from_string("Vote111111111111111111111111111111111111111")
COMPUTE_BUDGET = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
U64_MAX = 2**64 - 1
RATE_BPS = 900  # 9% warm-up / cool-down
BLOCKHASH_WINDOW = 150
VOTE_SIZE = 3762
SLOT_MS = 400


# --- stake account layout (StakeStateV2, bincode) -------------------------
# tag u32 | meta: rent_exempt_reserve u64, staker [32], withdrawer [32],
# lockup (unix_timestamp i64, epoch u64, custodian [32]) | stake:
# voter [32], stake u64, activation_epoch u64, deactivation_epoch u64,
# warmup_cooldown_rate f64, credits_observed u64 | flags u8
OFF_VOTER, OFF_STAKE, OFF_ACT, OFF_DEACT = 124, 156, 164, 172


def parse_stake(data):
    if len(data) < 200:
        return None
    tag = struct.unpack_from("<I", data, 0)[0]
    if tag != 2:
        return None
    return {
        "voter": Pubkey(bytes(data[OFF_VOTER:OFF_VOTER + 32])),
        "stake": struct.unpack_from("<Q", data, OFF_STAKE)[0],
        "activation": struct.unpack_from("<Q", data, OFF_ACT)[0],
        "deactivation": struct.unpack_from("<Q", data, OFF_DEACT)[0],
    }


def allowance(account_portion, cluster_portion, cluster_effective):
    if account_portion == 0 or cluster_portion == 0 or cluster_effective == 0:
        return 0
    delta = account_portion * cluster_effective * RATE_BPS // (cluster_portion * 10_000)
    return min(delta, account_portion)


def stake_and_activating(d, target, hist):
    stake = d["stake"]
    if d["activation"] == U64_MAX:
        return stake, 0
    if d["activation"] == d["deactivation"]:
        return 0, 0
    if target == d["activation"]:
        return 0, stake
    if target < d["activation"]:
        return 0, 0
    prev_epoch = d["activation"]
    prev = hist.get(prev_epoch)
    if prev is None:
        return stake, 0
    activated = 0
    while True:
        cur = prev_epoch + 1
        if prev[1] == 0:
            break
        remaining = stake - activated
        activated += max(allowance(remaining, prev[1], prev[0]), 1)
        if activated >= stake:
            activated = stake
            break
        if cur >= target or cur >= d["deactivation"]:
            break
        nxt = hist.get(cur)
        if nxt is None:
            break
        prev_epoch, prev = cur, nxt
    return activated, stake - activated


def activation_status(d, target, hist):
    """(effective, activating, deactivating) at `target`."""
    effective, activating = stake_and_activating(d, target, hist)
    if target < d["deactivation"]:
        return effective, activating, 0
    if target == d["deactivation"]:
        return 0, 0, effective
    prev_epoch = d["deactivation"]
    prev = hist.get(prev_epoch)
    if prev is None:
        return 0, 0, 0
    remaining = effective
    while True:
        cur = prev_epoch + 1
        if prev[2] == 0:
            break
        remaining = max(remaining - max(allowance(remaining, prev[2], prev[0]), 1), 0)
        if remaining == 0:
            break
        if cur >= target:
            break
        nxt = hist.get(cur)
        if nxt is None:
            break
        prev_epoch, prev = cur, nxt
    # Mirrors the interface: what is still cooling is reported as effective
    # and deactivating at once.
    return remaining, 0, remaining


def tx_error_json(e):
    """A transaction error in the RPC's JSON (serde's externally tagged
    TransactionError): "AccountNotFound", or {"InstructionError": [i,
    {"Custom": n}]} / {"InstructionError": [i, "InsufficientFunds"]}."""
    if type(e).__name__ == "TransactionErrorInstructionError":
        inner = e.err
        if type(inner).__name__ == "InstructionErrorCustom":
            return {"InstructionError": [e.index, {"Custom": inner.code}]}
        return {"InstructionError": [e.index, str(inner).split(".")[-1]]}
    return str(e).split(".")[-1]


class RpcError(Exception):
    def __init__(self, code, message, data=None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class Node:
    def __init__(self, args):
        self.lock = threading.RLock()
        self.svm = LiteSVM().with_sigverify(True).with_blockhash_check(False)
        self.spe = args.slots_per_epoch
        self.svm.set_epoch_schedule(EpochSchedule.custom(self.spe, self.spe, False))
        self.genesis_time = args.genesis_time
        self.slot_ms = args.slot_ms
        self.cluster_stake = args.cluster_stake
        self.reward_bps = args.reward_bps
        self.genesis_hash = str(Hash.new_unique()) if args.genesis_hash is None else args.genesis_hash
        self.slot = args.start_epoch * self.spe
        self.block_height = self.slot
        self.blockhashes = []  # (hash, block height), newest last
        self.sigs = {}  # signature -> {"slot", "err"}
        # Executed transactions as getTransaction reports them, and each
        # account's signatures, oldest first (getSignaturesForAddress).
        self.txs = {}
        self.by_address = {}
        self.rewards = {}  # (epoch, address) -> reward dict
        self.votes = {}  # vote pubkey str -> {"node", "commission", "delinquent"}
        self.drop_sends = 0
        # Sends accepted but not yet included (test_holdSends), in order.
        self.hold_sends = 0
        self.held = []
        # The priority-fee market: (from slot, micro-lamports per CU), oldest first.
        self.market = [(0, 0)]
        self.dropped_underpriced = 0
        self.hist = {}  # epoch -> (effective, activating, deactivating)
        for e in range(max(0, args.start_epoch - 5), args.start_epoch):
            self.hist[e] = (self.cluster_stake, 0, 0)
        self.write_history()
        self.set_clock()
        self.new_blockhash()
        self.faucet = Keypair()
        self.svm.set_account(self.faucet.pubkey(), Account(lamports=10**18, data=b"", owner=Pubkey.default(),
                                                           executable=False, rent_epoch=0))

    # --- time -------------------------------------------------------------
    def epoch(self, slot=None):
        return (self.slot if slot is None else slot) // self.spe

    def time_of(self, slot):
        return self.genesis_time + slot * self.slot_ms // 1000

    def set_clock(self):
        e = self.epoch()
        self.svm.set_clock(Clock(
            slot=self.slot,
            epoch_start_timestamp=self.time_of(e * self.spe),
            epoch=e,
            leader_schedule_epoch=e + 1,
            unix_timestamp=self.time_of(self.slot),
        ))

    def new_blockhash(self):
        self.svm.expire_blockhash()
        self.blockhashes.append((str(self.svm.latest_blockhash()), self.block_height))
        self.blockhashes = self.blockhashes[-(BLOCKHASH_WINDOW + 50):]

    def blockhash_valid(self, h):
        return any(b == h and self.block_height - bh <= BLOCKHASH_WINDOW for b, bh in self.blockhashes)

    def advance_slots(self, n):
        for _ in range(n):
            old_epoch = self.epoch()
            self.slot += 1
            self.block_height += 1
            if self.epoch() != old_epoch:
                self.end_epoch(old_epoch)
            self.set_clock()
            self.new_blockhash()

    def advance_epochs(self, n):
        for _ in range(n):
            self.advance_slots((self.epoch() + 1) * self.spe - self.slot)

    # --- epochs -------------------------------------------------------------
    def stake_accounts(self):
        out = []
        for addr, acct in self.svm.get_program_accounts(STAKE):
            d = parse_stake(bytes(acct.data))
            if d is not None:
                out.append((addr, acct, d))
        return out

    def write_history(self):
        h = StakeHistory()
        for e in sorted(self.hist):
            eff, act, deact = self.hist[e]
            h.add(e, StakeHistoryEntry(effective=eff, activating=act, deactivating=deact))
        self.svm.set_stake_history(h)

    def end_epoch(self, e):
        accounts = self.stake_accounts()
        total = [self.cluster_stake, 0, 0]
        statuses = []
        for addr, acct, d in accounts:
            st = activation_status(d, e, self.hist)
            statuses.append((addr, acct, d, st))
            for i in range(3):
                total[i] += st[i]
        self.hist[e] = tuple(total)
        self.write_history()
        first_next = (e + 1) * self.spe
        for addr, acct, d, (effective, _act, _deact) in statuses:
            vote = self.votes.get(str(d["voter"]))
            if effective == 0 or vote is None or vote["delinquent"]:
                continue
            gross = effective * self.reward_bps // 10_000
            commission = gross * vote["commission"] // 100
            ours = gross - commission
            if ours <= 0:
                continue
            data = bytearray(bytes(acct.data))
            struct.pack_into("<Q", data, OFF_STAKE, d["stake"] + ours)
            post = acct.lamports + ours
            self.svm.set_account(addr, Account(lamports=post, data=bytes(data), owner=STAKE,
                                               executable=False, rent_epoch=acct.rent_epoch))
            va = self.svm.get_account(d["voter"])
            if va is not None and commission > 0:
                self.svm.set_account(d["voter"], Account(lamports=va.lamports + commission, data=bytes(va.data),
                                                         owner=va.owner, executable=False, rent_epoch=va.rent_epoch))
            self.rewards[(e, str(addr))] = {
                "epoch": e, "effectiveSlot": first_next, "amount": ours,
                "postBalance": post, "commission": vote["commission"],
            }

    # --- helpers ------------------------------------------------------------
    def ctx(self, value):
        return {"context": {"slot": self.slot, "apiVersion": "2.2.0"}, "value": value}

    def account_json(self, acct):
        return {
            "lamports": acct.lamports,
            "owner": str(acct.owner),
            "data": [base64.b64encode(bytes(acct.data)).decode(), "base64"],
            "executable": acct.executable,
            "rentEpoch": U64_MAX,
            "space": len(bytes(acct.data)),
        }

    def execute(self, tx):
        """Runs `tx` in LiteSVM and, when it lands, records it with the
        balances of its accounts before and after and the fee LiteSVM
        charged, as a node's getTransaction reports them."""
        keys = list(tx.message.account_keys)
        pre = [self.svm.get_balance(k) or 0 for k in keys]
        r = self.svm.send_transaction(tx)
        if isinstance(r, FailedTransactionMetadata):
            return r
        sig = str(tx.signatures[0])
        post = [self.svm.get_balance(k) or 0 for k in keys]
        self.txs[sig] = {
            "slot": self.slot,
            "blockTime": self.time_of(self.slot),
            # getTransaction's default (json) form, as Agave's
            # UiTransaction: the raw message with its header and compiled
            # instructions (data in base58).
            "transaction": {
                "signatures": [str(s) for s in tx.signatures],
                "message": {
                    "header": {
                        "numRequiredSignatures": tx.message.header.num_required_signatures,
                        "numReadonlySignedAccounts": tx.message.header.num_readonly_signed_accounts,
                        "numReadonlyUnsignedAccounts": tx.message.header.num_readonly_unsigned_accounts,
                    },
                    "accountKeys": [str(k) for k in keys],
                    "recentBlockhash": str(tx.message.recent_blockhash),
                    "instructions": [
                        {"programIdIndex": ix.program_id_index, "accounts": list(bytes(ix.accounts)),
                         "data": b58.encode(bytes(ix.data)), "stackHeight": None}
                        for ix in tx.message.instructions
                    ],
                },
            },
            "meta": {"err": None, "status": {"Ok": None}, "fee": r.fee(),
                     "preBalances": pre, "postBalances": post},
            "version": "legacy",
            # The wire bytes, for encoding base64.
            "raw": base64.b64encode(bytes(tx)).decode(),
        }
        for k in dict.fromkeys(str(k) for k in keys):
            self.by_address.setdefault(k, []).append(sig)
        return r

    def send_raw(self, tx, payer):
        r = self.execute(tx)
        if isinstance(r, FailedTransactionMetadata):
            raise RpcError(-32002, f"setup transaction failed: {r.err()}", {"logs": r.meta().logs})
        return r

    def min_delegation(self):
        # Ask the stake program (GetMinimumDelegation, tag 13).
        ix = Instruction(STAKE, struct.pack("<I", 13), [])
        msg = Message([ix], self.faucet.pubkey())
        tx = Transaction([self.faucet], msg, self.svm.latest_blockhash())
        sim = self.svm.simulate_transaction(tx)
        if isinstance(sim, FailedTransactionMetadata):
            raise RpcError(-32603, f"GetMinimumDelegation failed: {sim.err()}")
        return struct.unpack("<Q", bytes(sim.meta().return_data().data)[:8])[0]

    # --- RPC ----------------------------------------------------------------
    def dispatch(self, method, params):
        p = params or []
        f = getattr(self, "rpc_" + method, None)
        if f is None:
            raise RpcError(-32601, "Method not found")
        with self.lock:
            return f(*p)

    def rpc_getGenesisHash(self):
        return self.genesis_hash

    def rpc_getHealth(self):
        return "ok"

    def rpc_getSlot(self, cfg=None):
        return self.slot

    def rpc_getBlockTime(self, slot):
        if slot > self.slot:
            raise RpcError(-32004, f"Block not available for slot {slot}")
        return self.time_of(slot)

    def rpc_getBlocksWithLimit(self, start, limit, cfg=None):
        return [s for s in range(start, min(start + limit, self.slot + 1))]

    def rpc_getEpochInfo(self, cfg=None):
        return {
            "absoluteSlot": self.slot, "blockHeight": self.block_height, "epoch": self.epoch(),
            "slotIndex": self.slot % self.spe, "slotsInEpoch": self.spe, "transactionCount": len(self.sigs),
        }

    def rpc_getEpochSchedule(self):
        return {"slotsPerEpoch": self.spe, "leaderScheduleSlotOffset": self.spe, "warmup": False,
                "firstNormalEpoch": 0, "firstNormalSlot": 0}

    def rpc_getAccountInfo(self, addr, cfg=None):
        a = self.svm.get_account(Pubkey.from_string(addr))
        if a is None or a.lamports == 0:
            return self.ctx(None)
        return self.ctx(self.account_json(a))

    def rpc_getBalance(self, addr, cfg=None):
        return self.ctx(self.svm.get_balance(Pubkey.from_string(addr)) or 0)

    def rpc_getProgramAccounts(self, program, cfg=None):
        cfg = cfg or {}
        out = []
        for addr, acct in self.svm.get_program_accounts(Pubkey.from_string(program)):
            data = bytes(acct.data)
            if acct.lamports == 0:
                continue
            ok = True
            for f in cfg.get("filters", []):
                if "dataSize" in f and len(data) != f["dataSize"]:
                    ok = False
                if "memcmp" in f:
                    m = f["memcmp"]
                    want = b58.decode(m["bytes"])
                    if data[m["offset"]:m["offset"] + len(want)] != want:
                        ok = False
            if ok:
                out.append({"pubkey": str(addr), "account": self.account_json(acct)})
        return out

    def rpc_getMinimumBalanceForRentExemption(self, size, cfg=None):
        return self.svm.minimum_balance_for_rent_exemption(size)

    def rpc_getStakeMinimumDelegation(self, cfg=None):
        return self.ctx(self.min_delegation())

    def rpc_getVoteAccounts(self, cfg=None):
        stake_by_vote = {}
        for _addr, _acct, d in self.stake_accounts():
            eff, _a, _d = activation_status(d, self.epoch(), self.hist)
            stake_by_vote[str(d["voter"])] = stake_by_vote.get(str(d["voter"]), 0) + eff
        cur, bad = [], []
        for v, info in self.votes.items():
            entry = {"votePubkey": v, "nodePubkey": info["node"], "activatedStake": stake_by_vote.get(v, 0),
                     "epochVoteAccount": True, "commission": info["commission"], "lastVote": self.slot,
                     "epochCredits": [], "rootSlot": self.slot}
            (bad if info["delinquent"] else cur).append(entry)
        return {"current": cur, "delinquent": bad}

    def rpc_getLatestBlockhash(self, cfg=None):
        h, bh = self.blockhashes[-1]
        return self.ctx({"blockhash": h, "lastValidBlockHeight": bh + BLOCKHASH_WINDOW})

    def rpc_isBlockhashValid(self, h, cfg=None):
        return self.ctx(self.blockhash_valid(h))

    def rpc_sendTransaction(self, encoded, cfg=None):
        raw = base64.b64decode(encoded)
        tx = VersionedTransaction.from_bytes(raw)
        sig = str(tx.signatures[0])
        if sig in self.sigs:
            raise RpcError(-32002, "Transaction simulation failed: This transaction has already been processed",
                           {"err": "AlreadyProcessed", "logs": []})
        if any(str(h.signatures[0]) == sig for h in self.held):
            return sig  # already pending: a node keeps one copy
        if not self.blockhash_valid(str(tx.message.recent_blockhash)):
            raise RpcError(-32002, "Transaction simulation failed: Blockhash not found",
                           {"err": "BlockhashNotFound", "logs": []})
        if self.drop_sends > 0:
            self.drop_sends -= 1
            return sig
        if self.cu_price(tx) < self.market_at(self.slot):
            self.dropped_underpriced += 1
            return sig
        if self.hold_sends > 0:
            self.hold_sends -= 1
            self.held.append(tx)
            return sig
        r = self.execute(tx)
        if isinstance(r, FailedTransactionMetadata):
            raise RpcError(-32002, f"Transaction simulation failed: {r.err()}",
                           {"err": str(r.err()), "logs": list(r.meta().logs)})
        self.sigs[sig] = {"slot": self.slot, "err": None}
        return sig

    def cu_price(self, tx):
        """The transaction's SetComputeUnitPrice (ComputeBudget tag 3), or 0."""
        keys = list(tx.message.account_keys)
        for ix in tx.message.instructions:
            data = bytes(ix.data)
            if keys[ix.program_id_index] == COMPUTE_BUDGET and len(data) == 9 and data[0] == 3:
                return struct.unpack("<Q", data[1:])[0]
        return 0

    def market_at(self, slot):
        return [fee for since, fee in self.market if since <= slot][-1]

    def rpc_getRecentPrioritizationFees(self, addrs=None, cfg=None):
        # One entry per recent slot (at most 150), oldest first: the fee a
        # transaction locking the given accounts needed in it.
        if addrs is not None and len(addrs) > 128:
            raise RpcError(-32602, "Too many inputs provided; max 128")
        first = max(0, self.slot - 149)
        return [{"slot": s, "prioritizationFee": self.market_at(s)} for s in range(first, self.slot + 1)]

    def rpc_simulateTransaction(self, encoded, cfg=None):
        cfg = cfg or {}
        if cfg.get("encoding") != "base64":
            raise RpcError(-32602, "only base64 is served here")
        tx = VersionedTransaction.from_bytes(base64.b64decode(encoded))
        if not self.blockhash_valid(str(tx.message.recent_blockhash)):
            return self.ctx({"err": "BlockhashNotFound", "logs": [], "accounts": None,
                             "unitsConsumed": 0, "returnData": None})
        sim = self.svm.simulate_transaction(tx)
        failed = isinstance(sim, FailedTransactionMetadata)
        meta = sim.meta()
        logs = meta.logs() if callable(meta.logs) else meta.logs
        return self.ctx({"err": tx_error_json(sim.err()) if failed else None, "logs": list(logs),
                         "accounts": None, "unitsConsumed": meta.compute_units_consumed(),
                         "returnData": None})

    def rpc_getSignatureStatuses(self, sigs, cfg=None):
        out = []
        for s in sigs:
            st = self.sigs.get(s)
            if st is None:
                out.append(None)
                continue
            final = self.slot > st["slot"]
            status = {"Ok": None} if st["err"] is None else {"Err": st["err"]}
            out.append({"slot": st["slot"], "confirmations": None if final else 0, "err": st["err"],
                        "status": status, "confirmationStatus": "finalized" if final else "confirmed"})
        return self.ctx(out)

    def rpc_getSignaturesForAddress(self, addr, cfg=None):
        # Newest first; `before` and `until` exclusive; `limit` at most 1000.
        cfg = cfg or {}
        limit = cfg.get("limit", 1000)
        if not 1 <= limit <= 1000:
            raise RpcError(-32602, "Invalid limit; max 1000")
        sigs = list(reversed(self.by_address.get(addr, [])))
        if cfg.get("before") is not None:
            sigs = sigs[sigs.index(cfg["before"]) + 1:] if cfg["before"] in sigs else []
        if cfg.get("until") is not None and cfg["until"] in sigs:
            sigs = sigs[:sigs.index(cfg["until"])]
        out = []
        for sg in sigs[:limit]:
            t = self.txs[sg]
            out.append({"signature": sg, "slot": t["slot"], "err": None, "memo": None,
                        "blockTime": t["blockTime"], "confirmationStatus": "confirmed"})
        return out

    def rpc_getTransaction(self, sig, cfg=None):
        t = self.txs.get(sig)
        if t is None:
            return None
        t = dict(t)
        raw = t.pop("raw")
        if (cfg or {}).get("encoding") == "base64":
            # As a node answers: the transaction's wire bytes, and the same meta.
            t["transaction"] = [raw, "base64"]
        return t

    def rpc_getInflationReward(self, addrs, cfg=None):
        cfg = cfg or {}
        e = cfg.get("epoch", self.epoch() - 1)
        if e >= self.epoch():
            raise RpcError(-32004, f"Block not available for epoch {e}")
        return [self.rewards.get((e, a)) for a in addrs]

    # --- test controls --------------------------------------------------------
    def rpc_test_advanceSlots(self, n):
        self.advance_slots(n)
        return self.slot

    def rpc_test_advanceEpochs(self, n):
        self.advance_epochs(n)
        return self.epoch()

    def rpc_test_transfer(self, addr, lamports):
        """A system transfer from the faucet (a stranger, or the exchange's
        wallet): its signature."""
        tx = Transaction([self.faucet], Message([sp.transfer(sp.TransferParams(
            from_pubkey=self.faucet.pubkey(), to_pubkey=Pubkey.from_string(addr), lamports=lamports))],
            self.faucet.pubkey()), self.svm.latest_blockhash())
        self.send_raw(tx, self.faucet)
        return str(tx.signatures[0])

    def rpc_test_airdrop(self, addr, lamports):
        self.rpc_test_transfer(addr, lamports)
        return self.svm.get_balance(Pubkey.from_string(addr))

    def rpc_test_createVote(self, commission):
        node, vote = Keypair(), Keypair()
        payer = self.faucet
        create = sp.create_account(sp.CreateAccountParams(
            from_pubkey=payer.pubkey(), to_pubkey=vote.pubkey(),
            lamports=self.svm.minimum_balance_for_rent_exemption(VOTE_SIZE), space=VOTE_SIZE, owner=VOTE))
        init = Instruction(VOTE, struct.pack("<I", 0) + bytes(node.pubkey()) * 3 + bytes([commission]), [
            AccountMeta(vote.pubkey(), False, True), AccountMeta(RENT, False, False),
            AccountMeta(CLOCK, False, False), AccountMeta(node.pubkey(), True, False)])
        tx = Transaction([payer, vote, node], Message([create, init], payer.pubkey()), self.svm.latest_blockhash())
        self.send_raw(tx, payer)
        self.votes[str(vote.pubkey())] = {"node": str(node.pubkey()), "commission": commission, "delinquent": False}
        return str(vote.pubkey())

    def rpc_test_setDelinquent(self, vote, delinquent):
        self.votes[vote]["delinquent"] = bool(delinquent)
        return True

    def rpc_test_dropSends(self, n):
        self.drop_sends = n
        return n

    def rpc_test_holdSends(self, n):
        """The next `n` sends are accepted and held, as a leader holds what
        it has not included yet; `test_releaseHeld` includes them."""
        self.hold_sends = n
        return n

    def rpc_test_releaseHeld(self):
        """Includes the held transactions in order; a failing one is
        recorded as failed (its fee paid), as a block records it. Returns
        [signature, error or null] per transaction."""
        out = []
        for tx in self.held:
            sig = str(tx.signatures[0])
            if not self.blockhash_valid(str(tx.message.recent_blockhash)):
                out.append([sig, "BlockhashNotFound"])
                continue
            r = self.execute(tx)
            if isinstance(r, FailedTransactionMetadata):
                err = tx_error_json(r.err())
                self.sigs[sig] = {"slot": self.slot, "err": err}
                out.append([sig, err])
            else:
                self.sigs[sig] = {"slot": self.slot, "err": None}
                out.append([sig, None])
        self.held = []
        return out

    def rpc_test_setPriorityMarket(self, fee):
        """From this slot on, leaders require `fee` micro-lamports per
        compute unit; returns how many sends were dropped as underpriced so far."""
        self.market.append((self.slot, int(fee)))
        return self.dropped_underpriced

    def rpc_test_history(self):
        return {str(e): list(v) for e, v in self.hist.items()}


def make_handler(node):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                req = json.loads(body)
            except ValueError:
                return self.reply({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
            reqs = req if isinstance(req, list) else [req]
            out = []
            for r in reqs:
                try:
                    out.append({"jsonrpc": "2.0", "id": r.get("id"), "result": node.dispatch(r["method"], r.get("params"))})
                except RpcError as e:
                    err = {"code": e.code, "message": e.message}
                    if e.data is not None:
                        err["data"] = e.data
                    out.append({"jsonrpc": "2.0", "id": r.get("id"), "error": err})
                except Exception as e:  # a bug in the node or bad params
                    out.append({"jsonrpc": "2.0", "id": r.get("id"), "error": {"code": -32602, "message": f"{type(e).__name__}: {e}"}})
            self.reply(out if isinstance(req, list) else out[0])

        def do_GET(self):
            self.reply({"status": "ok"} if self.path == "/health" else {"error": "POST JSON-RPC"})

        def reply(self, obj):
            data = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--slots-per-epoch", type=int, default=32)
    ap.add_argument("--start-epoch", type=int, default=10)
    ap.add_argument("--cluster-stake", type=int, default=10**18, help="other validators' effective stake, lamports")
    ap.add_argument("--reward-bps", type=int, default=10, help="reward per epoch on effective stake, basis points")
    ap.add_argument("--genesis-time", type=int, default=1_700_000_000)
    ap.add_argument("--slot-ms", type=int, default=SLOT_MS, help="chain time per slot (the devnet stretches it)")
    ap.add_argument("--genesis-hash", default=None)
    args = ap.parse_args()
    node = Node(args)
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(node))
    print(f"listening on {srv.server_address[1]} genesis {node.genesis_hash}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
