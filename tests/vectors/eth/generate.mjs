// Reference vectors for softstake's Ethereum adapter (pinned in
// package.json / package-lock.json):
// - the deposit contract (DepositContract.sol, written from the consensus
//   spec) compiled with solcjs;
// - deposit data for throwaway BLS keys (secret keys 0x01.., 0x02.., 0x03..
//   x 32) in staking-deposit-cli's format, with roots from @chainsafe/ssz
//   and BLS signatures from @chainsafe/bls over the deposit domain;
// - signed EIP-1559 transactions (deposit calls, EIP-7002 withdrawal
//   requests) made by viem for a throwaway secp256k1 key (0x02 x 32).
// Regenerate: npm ci && npm run generate
import { readFileSync } from "node:fs";
import solc from "solc";
import bls from "@chainsafe/bls";
import { ByteVectorType, ContainerType, UintNumberType } from "@chainsafe/ssz";
import { encodeFunctionData, keccak256, parseEther, concatHex, toHex, numberToHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const hex = (b) => Buffer.from(b).toString("hex");
const read = (f) => readFileSync(new URL(`./${f}`, import.meta.url), "utf8");
const compiled = JSON.parse(solc.compile(JSON.stringify({
  language: "Solidity",
  sources: {
    "DepositContract.sol": { content: read("DepositContract.sol") },
    "WithdrawalRequests.sol": { content: read("WithdrawalRequests.sol") },
  },
  settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: "cancun", outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } } },
})));
for (const e of compiled.errors ?? []) if (e.severity === "error") throw new Error(e.formattedMessage);
const contract = compiled.contracts["DepositContract.sol"].DepositContract;

// SSZ types (consensus spec, phase0).
const Bytes4 = new ByteVectorType(4), Bytes32 = new ByteVectorType(32), Bytes48 = new ByteVectorType(48), Bytes96 = new ByteVectorType(96);
const Gwei = new UintNumberType(8);
const DepositMessage = new ContainerType({ pubkey: Bytes48, withdrawal_credentials: Bytes32, amount: Gwei });
const DepositData = new ContainerType({ pubkey: Bytes48, withdrawal_credentials: Bytes32, amount: Gwei, signature: Bytes96 });
const ForkData = new ContainerType({ current_version: Bytes4, genesis_validators_root: Bytes32 });
const SigningData = new ContainerType({ object_root: Bytes32, domain: Bytes32 });

const FORK_VERSION = Uint8Array.from([0x10, 0x00, 0x00, 0x38]);
const DOMAIN_DEPOSIT = Uint8Array.from([0x03, 0x00, 0x00, 0x00]);
const domain = new Uint8Array(32);
domain.set(DOMAIN_DEPOSIT, 0);
domain.set(ForkData.hashTreeRoot({ current_version: FORK_VERSION, genesis_validators_root: new Uint8Array(32) }).slice(0, 28), 4);

const account = privateKeyToAccount(toHex(new Uint8Array(32).fill(2)));
const custody = account.address;
const credentials = (prefix) => {
  const wc = new Uint8Array(32);
  wc[0] = prefix;
  wc.set(Buffer.from(custody.slice(2), "hex"), 12);
  return wc;
};

function depositEntry(skByte, prefix, gwei) {
  const sk = bls.SecretKey.fromBytes(new Uint8Array(32).fill(skByte));
  const pubkey = sk.toPublicKey().toBytes();
  const msg = { pubkey, withdrawal_credentials: credentials(prefix), amount: gwei };
  const messageRoot = DepositMessage.hashTreeRoot(msg);
  const signingRoot = SigningData.hashTreeRoot({ object_root: messageRoot, domain });
  const signature = sk.sign(signingRoot).toBytes();
  const dataRoot = DepositData.hashTreeRoot({ ...msg, signature });
  return {
    pubkey: hex(pubkey), withdrawal_credentials: hex(msg.withdrawal_credentials), amount: gwei,
    signature: hex(signature), deposit_message_root: hex(messageRoot), deposit_data_root: hex(dataRoot),
    fork_version: hex(FORK_VERSION), network_name: "softstake-devnet", deposit_cli_version: "2.7.0",
  };
}

const entries = [
  depositEntry(1, 0x01, 32_000_000_000),
  depositEntry(2, 0x02, 64_000_000_000),
  depositEntry(3, 0x01, 32_000_000_000),
];

const depositAbi = contract.abi;
const DEPOSIT_ADDRESS = "0x00000000219ab540356cBB839Cbe05303d7705Fa";
const REQUEST_ADDRESS = "0x00000961Ef480Eb55e80D19ad83579A64c007002";
const fees = { chainId: 31337, maxFeePerGas: 30_000_000_000n, maxPriorityFeePerGas: 1_500_000_000n };

async function sign(name, nonce, gas, to, value, data, params) {
  const raw = await account.signTransaction({ type: "eip1559", ...fees, nonce, gas, to, value, data });
  return { name, nonce, gas: Number(gas), to, value: value.toString(), data, params, raw, hash: keccak256(raw) };
}

const txs = [];
for (const [i, e] of entries.slice(0, 2).entries()) {
  const data = encodeFunctionData({ abi: depositAbi, functionName: "deposit", args: [
    `0x${e.pubkey}`, `0x${e.withdrawal_credentials}`, `0x${e.signature}`, `0x${e.deposit_data_root}`] });
  txs.push(await sign(`deposit_${i}`, 5 + i, 120_000n, DEPOSIT_ADDRESS, BigInt(e.amount) * 1_000_000_000n, data, { entry: i }));
}
// EIP-7002: calldata = validator pubkey (48) ++ amount in gwei (8, big endian); 0 = full exit.
const request = (pubkey, gwei) => concatHex([`0x${pubkey}`, numberToHex(gwei, { size: 8 })]);
txs.push(await sign("exit_request", 7, 200_000n, REQUEST_ADDRESS, 1n, request(entries[0].pubkey, 0n), { entry: 0, amount_gwei: 0, fee_wei: 1 }));
txs.push(await sign("partial_withdrawal_request", 8, 200_000n, REQUEST_ADDRESS, 3n, request(entries[1].pubkey, 16_000_000_000n), { entry: 1, amount_gwei: 16000000000, fee_wei: 3 }));

console.log(JSON.stringify({
  custody_key_hex: hex(new Uint8Array(32).fill(2)),
  custody_address: custody,
  fork_version: hex(FORK_VERSION),
  chain_id: fees.chainId,
  max_fee_per_gas: fees.maxFeePerGas.toString(),
  max_priority_fee_per_gas: fees.maxPriorityFeePerGas.toString(),
  deposit_contract: DEPOSIT_ADDRESS,
  withdrawal_request_contract: REQUEST_ADDRESS,
  deposit_contract_bytecode: contract.evm.bytecode.object,
  withdrawal_request_runtime: compiled.contracts["WithdrawalRequests.sol"].WithdrawalRequests.evm.deployedBytecode.object,
  deposit_data: entries,
  transactions: txs,
}, null, 2));
