// Reference vectors for softstake's Cardano adapter, made by
// @emurgo/cardano-serialization-lib-nodejs (pinned in package.json /
// package-lock.json): Conway-era transactions with the same inputs, keys,
// protocol parameters, TTL and fee rule as softstake (fee = a x size + b of
// the signed transaction, iterated until it no longer grows; one change
// output back to the base address), bodies and full signed CBOR.
// Regenerate: npm ci && npm run generate
import C from "@emurgo/cardano-serialization-lib-nodejs";

const hex = (b) => Buffer.from(b).toString("hex");
const PAYMENT_SEED = new Uint8Array(32).fill(0x11);
const STAKE_SEED = new Uint8Array(32).fill(0x22);
const payment = C.PrivateKey.from_normal_bytes(PAYMENT_SEED);
const stake = C.PrivateKey.from_normal_bytes(STAKE_SEED);
const payCred = C.Credential.from_keyhash(payment.to_public().hash());
const stakeCred = C.Credential.from_keyhash(stake.to_public().hash());
const NETWORK = 0; // testnets
const address = C.BaseAddress.new(NETWORK, payCred, stakeCred).to_address();
const rewardAddress = C.RewardAddress.new(NETWORK, stakeCred);
const POOL1 = C.Ed25519KeyHash.from_bytes(new Uint8Array(28).fill(0x33));
const POOL2 = C.Ed25519KeyHash.from_bytes(new Uint8Array(28).fill(0x44));
const DREP_KEY = C.Ed25519KeyHash.from_bytes(new Uint8Array(28).fill(0x55));
const params = { min_fee_a: 44, min_fee_b: 155381, key_deposit: 2000000 };
const TTL = 50_000_000;
const utxos = [
  { tx_hash: "aa".repeat(32), output_index: 0, lovelace: 10_000_000_000 },
  { tx_hash: "bb".repeat(32), output_index: 1, lovelace: 5_000_000 },
];

function build({ inputs, certs = [], withdrawal = 0, deposit = 0, refund = 0, stakeWitness }) {
  const total = inputs.reduce((a, u) => a + u.lovelace, 0) + withdrawal + refund - deposit;
  let fee = 0;
  for (let i = 0; i < 10; i++) {
    const ins = C.TransactionInputs.new();
    for (const u of inputs) ins.add(C.TransactionInput.new(C.TransactionHash.from_hex(u.tx_hash), u.output_index));
    const outs = C.TransactionOutputs.new();
    outs.add(C.TransactionOutput.new(address, C.Value.new(C.BigNum.from_str(String(total - fee)))));
    const body = C.TransactionBody.new_tx_body(ins, outs, C.BigNum.from_str(String(fee)));
    body.set_ttl(C.BigNum.from_str(String(TTL)));
    if (certs.length) {
      const cs = C.Certificates.new();
      for (const c of certs) cs.add(c);
      body.set_certs(cs);
    }
    if (withdrawal > 0) {
      const w = C.Withdrawals.new();
      w.insert(rewardAddress, C.BigNum.from_str(String(withdrawal)));
      body.set_withdrawals(w);
    }
    const hash = C.FixedTransaction.new_from_body_bytes(body.to_bytes()).transaction_hash();
    const vks = C.Vkeywitnesses.new();
    vks.add(C.make_vkey_witness(hash, payment));
    if (stakeWitness) vks.add(C.make_vkey_witness(hash, stake));
    const ws = C.TransactionWitnessSet.new();
    ws.set_vkeys(vks);
    const tx = C.Transaction.new(body, ws);
    const size = tx.to_bytes().length;
    const need = params.min_fee_a * size + params.min_fee_b;
    if (need <= fee) {
      return { fee, body_cbor: hex(body.to_bytes()), tx_cbor: hex(tx.to_bytes()), tx_hash: hash.to_hex() };
    }
    fee = need;
  }
  throw new Error("fee did not converge");
}

const alwaysAbstain = C.DRep.new_always_abstain();
const cases = [
  { name: "register_and_delegate", op: { type: "register_and_delegate", pool: hex(POOL1.to_bytes()), deposit: params.key_deposit },
    ...build({ inputs: [utxos[0]], deposit: params.key_deposit, stakeWitness: true,
      certs: [C.Certificate.new_stake_registration_and_delegation(C.StakeRegistrationAndDelegation.new(stakeCred, POOL1, C.BigNum.from_str(String(params.key_deposit))))] }) },
  { name: "vote_always_abstain", op: { type: "vote_delegation", drep: "always_abstain" },
    ...build({ inputs: [utxos[0]], stakeWitness: true, certs: [C.Certificate.new_vote_delegation(C.VoteDelegation.new(stakeCred, alwaysAbstain))] }) },
  { name: "vote_drep_key", op: { type: "vote_delegation", drep: `key:${hex(DREP_KEY.to_bytes())}` },
    ...build({ inputs: [utxos[0]], stakeWitness: true, certs: [C.Certificate.new_vote_delegation(C.VoteDelegation.new(stakeCred, C.DRep.new_key_hash(DREP_KEY)))] }) },
  { name: "redelegate", op: { type: "delegate", pool: hex(POOL2.to_bytes()) },
    ...build({ inputs: [utxos[0]], stakeWitness: true, certs: [C.Certificate.new_stake_delegation(C.StakeDelegation.new(stakeCred, POOL2))] }) },
  { name: "withdraw_rewards", op: { type: "withdraw", amount: 12345678 },
    ...build({ inputs: [utxos[1]], withdrawal: 12345678, stakeWitness: true }) },
  { name: "deregister", op: { type: "deregister", refund: params.key_deposit, withdraw: 0 },
    ...build({ inputs: [utxos[1]], refund: params.key_deposit, stakeWitness: true,
      certs: [C.Certificate.new_stake_deregistration(C.StakeDeregistration.new_with_explicit_refund(stakeCred, C.BigNum.from_str(String(params.key_deposit))))] }) },
  { name: "two_inputs_plain", op: { type: "none" },
    ...build({ inputs: utxos, stakeWitness: false }) },
];

console.log(JSON.stringify({
  payment_seed_hex: hex(PAYMENT_SEED),
  stake_seed_hex: hex(STAKE_SEED),
  network_id: NETWORK,
  address: address.to_bech32(),
  reward_address: rewardAddress.to_address().to_bech32(),
  params,
  ttl: TTL,
  utxos,
  cases,
}, null, 2));
