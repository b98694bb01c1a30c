// Reference vectors for softstake's Solana adapter, made by @solana/web3.js
// (pinned in package.json / package-lock.json): every stake transaction the
// adapter sends, built with web3.js' own instruction builders
// (StakeProgram, SystemProgram via StakeProgram.splitWithSeed,
// ComputeBudgetProgram), compiled and signed by web3.js' legacy Transaction
// for the same key, blockhash and parameters. ed25519 is deterministic, so
// the full signed bytes must match softstake's.
// Regenerate: npm ci && npm run generate
import {
  Authorized, ComputeBudgetProgram, Keypair, Lockup, PublicKey, StakeProgram, Transaction,
} from "@solana/web3.js";

// Throwaway keys: ed25519 seeds 0x02 x 32 (custody) and 0x03 / 0x04 x 32
// (two vote accounts' addresses).
const key = Keypair.fromSeed(new Uint8Array(32).fill(2));
const K = key.publicKey;
const V1 = Keypair.fromSeed(new Uint8Array(32).fill(3)).publicKey;
const V2 = Keypair.fromSeed(new Uint8Array(32).fill(4)).publicKey;
const BLOCKHASH = new PublicKey(new Uint8Array(32).fill(9)).toBase58();
const RESERVE = 2282880;
const seed = (i) => `softstake-${i}`;
const stakeAt = async (i) => PublicKey.createWithSeed(K, seed(i), StakeProgram.programId);

const budget = (price, limit) =>
  price === 0 ? [] : [
    ComputeBudgetProgram.setComputeUnitLimit({ units: limit }),
    ComputeBudgetProgram.setComputeUnitPrice({ microLamports: price }),
  ];

async function cases() {
  const s0 = await stakeAt(0), s1 = await stakeAt(1), s2 = await stakeAt(2), s3 = await stakeAt(3);
  const createAndDelegate = (price, limit) => [
    ...budget(price, limit),
    StakeProgram.createAccountWithSeed({
      fromPubkey: K, stakePubkey: s0, basePubkey: K, seed: seed(0),
      authorized: new Authorized(K, K), lockup: new Lockup(0, 0, PublicKey.default),
      lamports: 5_000_000_000 + RESERVE,
    }),
    StakeProgram.delegate({ stakePubkey: s0, authorizedPubkey: K, votePubkey: V1 }),
  ];
  return [
    { name: "create_and_delegate", price: 0, limit: 200000,
      action: { type: "create_and_delegate", seed_index: 0, vote: V1.toBase58(), stake_lamports: 5000000000 },
      tx: createAndDelegate(0, 200000) },
    { name: "create_and_delegate_with_priority_fee", price: 25000, limit: 150000,
      action: { type: "create_and_delegate", seed_index: 0, vote: V1.toBase58(), stake_lamports: 5000000000 },
      tx: createAndDelegate(25000, 150000) },
    { name: "split_and_deactivate", price: 0, limit: 200000,
      action: { type: "split_and_deactivate", source: s0.toBase58(), seed_index: 1, lamports: 2000000000 },
      tx: [
        StakeProgram.splitWithSeed({
          stakePubkey: s0, authorizedPubkey: K, splitStakePubkey: s1, basePubkey: K, seed: seed(1),
          lamports: 2_000_000_000,
        }, RESERVE),
        StakeProgram.deactivate({ stakePubkey: s1, authorizedPubkey: K }),
      ] },
    { name: "deactivate", price: 0, limit: 200000,
      action: { type: "deactivate", account: s0.toBase58() },
      tx: [StakeProgram.deactivate({ stakePubkey: s0, authorizedPubkey: K })] },
    { name: "withdraw", price: 0, limit: 200000,
      action: { type: "withdraw", accounts: [
        { account: s1.toBase58(), lamports: 2000000000 + RESERVE },
        { account: s2.toBase58(), lamports: 3000000000 },
      ] },
      tx: [
        StakeProgram.withdraw({ stakePubkey: s1, authorizedPubkey: K, toPubkey: K, lamports: 2_000_000_000 + RESERVE }),
        StakeProgram.withdraw({ stakePubkey: s2, authorizedPubkey: K, toPubkey: K, lamports: 3_000_000_000 }),
      ] },
    { name: "merge", price: 0, limit: 200000,
      action: { type: "merge", destination: s0.toBase58(), source: s3.toBase58() },
      tx: [StakeProgram.merge({ stakePubkey: s0, sourceStakePubKey: s3, authorizedPubkey: K })] },
    { name: "redelegate_inactive", price: 0, limit: 200000,
      action: { type: "delegate", account: s1.toBase58(), vote: V2.toBase58() },
      tx: [StakeProgram.delegate({ stakePubkey: s1, authorizedPubkey: K, votePubkey: V2 })] },
  ];
}

const out = [];
for (const c of await cases()) {
  const tx = new Transaction({ feePayer: K, recentBlockhash: BLOCKHASH });
  for (const part of c.tx) tx.add(part);
  tx.sign(key);
  const bytes = tx.serialize();
  out.push({
    name: c.name,
    action: c.action,
    compute_unit_price: c.price,
    compute_unit_limit: c.limit,
    signature: bs58(tx.signature),
    tx_base64: Buffer.from(bytes).toString("base64"),
  });
}

function bs58(bytes) {
  const A = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  let n = BigInt("0x" + Buffer.from(bytes).toString("hex"));
  let s = "";
  while (n > 0n) { s = A[Number(n % 58n)] + s; n /= 58n; }
  for (const b of bytes) { if (b === 0) s = "1" + s; else break; }
  return s;
}

console.log(JSON.stringify({
  key_seed_hex: "02".repeat(32),
  address: K.toBase58(),
  blockhash: BLOCKHASH,
  rent_exempt_reserve: RESERVE,
  cases: out,
}, null, 2));
