//! chopsticks as the Polkadot test node: the real Paseo runtime (its wasm,
//! from the raw genesis in the crates.io crate `polkadot-service`'s chain
//! specs) executing our extrinsics, with blocks built on demand
//! (`--build-block-mode Instant`: one block per submitted extrinsic).
//!
//! `scripts/dot-node` installs chopsticks (npm, pinned by
//! chains/dot/testnode/package-lock.json) and fetches the chain spec
//! (sha256-checked). Eras do not pass by themselves on a node without
//! validators producing sessions, so the tests move them the way
//! docs/local-nodes.md describes: `dev_setStorage` writes `CurrentEra`,
//! `ActiveEra`, the era's exposures, reward points and validator reward,
//! and the runtime's own `payout_stakers` then pays from them.

use serde_json::{Value, json};
use softstake_testnode::RpcNode;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// The existential deposit of the committed Westend Asset Hub runtime
/// (0.001 WND): what its reward pots keep.
const ASSET_HUB_ED: u128 = 1_000_000_000;

/// Genesis hash chopsticks reports for a chain started from a raw genesis.
pub const CHOPSTICKS_GENESIS: &str =
    "0x4545454545454545454545454545454545454545454545454545454545454545";

/// A running chopsticks; killed on drop.
pub struct Chopsticks {
    node: RpcNode,
    /// HTTP JSON-RPC URL.
    pub url: String,
    /// staking-async (Asset Hub): exposures are written by page.
    paged: bool,
    /// The runtime's metadata, read once (the runtime never changes here).
    meta: tokio::sync::OnceCell<std::sync::Arc<subxt::metadata::Metadata>>,
}

impl std::fmt::Debug for Chopsticks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chopsticks")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn testnode_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testnode")
}

/// chopsticks' entry script: `SOFTSTAKE_CHOPSTICKS`, else the npm package.
pub fn chopsticks_path() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("SOFTSTAKE_CHOPSTICKS") {
        return Ok(PathBuf::from(p));
    }
    let p = testnode_dir().join("node_modules/@acala-network/chopsticks/chopsticks.cjs");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "chopsticks not found at {}: run scripts/dot-node or set SOFTSTAKE_CHOPSTICKS",
            p.display()
        ))
    }
}

/// The Paseo chain spec: `SOFTSTAKE_PASEO_SPEC`, else what scripts/dot-node fetched.
pub fn paseo_spec_path() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("SOFTSTAKE_PASEO_SPEC") {
        return Ok(PathBuf::from(p));
    }
    let p = testnode_dir().join("paseo.json");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "Paseo chain spec not found at {}: run scripts/dot-node or set SOFTSTAKE_PASEO_SPEC",
            p.display()
        ))
    }
}

impl Chopsticks {
    /// Starts chopsticks on the Paseo genesis on a free port, building a
    /// block on each submission.
    pub async fn start() -> Result<Self, String> {
        Self::start_in("Instant").await
    }

    /// Starts chopsticks building blocks only when asked
    /// ([`Chopsticks::new_blocks`]): submissions wait in its pool.
    pub async fn start_manual() -> Result<Self, String> {
        Self::start_in("Manual").await
    }

    async fn start_in(mode: &str) -> Result<Self, String> {
        Self::start_spec(&paseo_spec_path()?, mode).await
    }

    /// Starts chopsticks on the raw chain spec at `spec` in block mode
    /// `mode` ("Instant", "Batch" or "Manual").
    pub async fn start_spec(spec: &std::path::Path, mode: &str) -> Result<Self, String> {
        Self::launch(chopsticks_path()?, spec, mode, &[]).await
    }

    /// Starts chopsticks on the raw chain spec of an Asset Hub (a parachain
    /// whose runtime checks its relay parent's descendants,
    /// `RelayParentOffset` 1), through testnode/asset-hub-node.cjs: the
    /// mocked relay chain then carries a BABE authority and signed
    /// descendant headers, which the runtime verifies. `env` is passed to
    /// the launcher (SOFTSTAKE_AH_RELAY_OFFSET).
    pub async fn start_asset_hub(
        spec: &std::path::Path,
        mode: &str,
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        chopsticks_path()?;
        Self::launch(testnode_dir().join("asset-hub-node.cjs"), spec, mode, env).await
    }

    /// Starts the committed Westend Asset Hub runtime (staking-async) on its
    /// own development genesis (built into the temp dir by
    /// [`runtime_chain_spec`]) in block mode `mode`.
    pub async fn asset_hub(mode: &str) -> Result<Self, String> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let spec = std::env::temp_dir().join(format!(
            "softstake-westmint-{}-{}.json",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        runtime_chain_spec(&asset_hub_wasm_path(), "development", &spec).await?;
        let node = Self::start_asset_hub(&spec, mode, &[]).await;
        let _ = std::fs::remove_file(&spec);
        node
    }

    async fn launch(
        launcher: PathBuf,
        spec: &std::path::Path,
        mode: &str,
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let paged = launcher.ends_with("asset-hub-node.cjs");
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(launcher)
            .envs(env.iter().copied())
            .arg("--genesis")
            .arg(spec)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--build-block-mode",
                mode,
            ])
            .env("LOG_LEVEL", "info")
            .stderr(Stdio::null());
        // SOFTSTAKE_CHOPSTICKS_LOG names a file to keep its output in.
        let node = RpcNode::spawn(
            "chopsticks",
            cmd,
            Duration::from_secs(240),
            std::env::var("SOFTSTAKE_CHOPSTICKS_LOG").ok(),
            |line| {
                let i = line.find("RPC listening on http://")?;
                let rest = &line[i + "RPC listening on ".len()..];
                Some(rest.split_whitespace().next().unwrap_or("").to_owned())
            },
        )
        .await?;
        Ok(Chopsticks {
            url: node.url.clone(),
            node,
            paged,
            meta: tokio::sync::OnceCell::new(),
        })
    }

    /// One JSON-RPC call.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.node.call(method, params).await
    }

    /// `dev_setStorage` with chopsticks' JSON form
    /// (`{"Pallet": {"Entry": value | [[keys, value], ..]}}`).
    pub async fn set_storage(&self, values: Value) -> Result<(), String> {
        self.call("dev_setStorage", json!([values]))
            .await
            .map(|_| ())
    }

    /// Builds `count` empty blocks.
    pub async fn new_blocks(&self, count: u64) -> Result<(), String> {
        self.call("dev_newBlock", json!([{"count": count}]))
            .await
            .map(|_| ())
    }

    /// Waits (up to 60 s) until the transaction pool is empty and the head
    /// is past `after`, i.e. until Instant mode has built the block for what
    /// was submitted (building a block takes the runtime a second or two).
    pub async fn settle(&self, after: u64) -> Result<(), String> {
        for _ in 0..600 {
            let p = self.call("author_pendingExtrinsics", json!([])).await?;
            if p.as_array().is_none_or(|a| a.is_empty()) && self.head_number().await? > after {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("chopsticks built no block for the submitted extrinsics in 60 s".into())
    }

    /// The head block number.
    pub async fn head_number(&self) -> Result<u64, String> {
        let h = self.call("chain_getHeader", json!([])).await?;
        crate::rpc::block_number(&h["number"]).ok_or_else(|| "no block number".into())
    }

    /// The head's `Timestamp.Now`, ms.
    pub async fn now_ms(&self) -> Result<u64, String> {
        let mut k = sp_crypto_hashing::twox_128(b"Timestamp").to_vec();
        k.extend(sp_crypto_hashing::twox_128(b"Now"));
        // Right after start the head can still be the genesis block, which
        // has no timestamp: wait for block 1, and after 10 s ask for it
        // (`dev_newBlock`, again every 30 s) rather than depend on chopsticks
        // building it by itself. The first block compiles the runtime: a CI
        // run once waited 60 s for it, and a fresh machine's cold run with
        // both cores busy 60 s again, so allow three minutes.
        for i in 0..360 {
            if i == 20 || (i > 20 && i % 60 == 20) {
                self.new_blocks(1).await?;
            }
            let v = self
                .call(
                    "state_getStorage",
                    json!([format!("0x{}", hex::encode(&k))]),
                )
                .await?;
            if let Some(h) = v.as_str() {
                let b = hex::decode(h.trim_start_matches("0x")).map_err(|e| e.to_string())?;
                let arr: [u8; 8] = b.try_into().map_err(|_| "Timestamp.Now is not a u64")?;
                return Ok(u64::from_le_bytes(arr));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err("chopsticks has no Timestamp.Now after 180 s".into())
    }

    /// Gives `who` (SS58) a free balance of `planck`.
    pub async fn fund(&self, who: &str, planck: u128) -> Result<(), String> {
        self.set_storage(json!({"System": {"Account": [[[who], {
            "providers": 1,
            "data": {"free": planck.to_string()}
        }]]}}))
        .await
    }

    /// Makes `era` the current and active era, started at `start_ms`.
    pub async fn set_era(&self, era: u32, start_ms: u64) -> Result<(), String> {
        self.set_storage(json!({"Staking": {
            "CurrentEra": era,
            "ActiveEra": {"index": era, "start": start_ms},
        }}))
        .await
    }

    /// Writes `era`'s exposure of `validator`: its own stake plus the
    /// nominators `(who, planck)`: full and clipped on a relay chain, by
    /// page on Asset Hub.
    pub async fn set_exposure(
        &self,
        era: u32,
        validator: &str,
        own: u128,
        nominators: &[(String, u128)],
    ) -> Result<(), String> {
        if self.paged {
            self.set_paged_exposure(era, validator, own, nominators)
                .await?;
            return self
                .set_storage(json!({"Staking": {
                    "ErasValidatorPrefs": [[[era, validator], {"commission": 0, "blocked": false}]],
                }}))
                .await;
        }
        let total: u128 = own + nominators.iter().map(|(_, v)| v).sum::<u128>();
        let exposure = json!({
            "total": total.to_string(),
            "own": own.to_string(),
            "others": nominators.iter().map(|(w, v)| json!({"who": w, "value": v.to_string()})).collect::<Vec<_>>(),
        });
        self.set_storage(json!({"Staking": {
            "ErasStakers": [[[era, validator], exposure.clone()]],
            "ErasStakersClipped": [[[era, validator], exposure]],
            "ErasValidatorPrefs": [[[era, validator], {"commission": 0, "blocked": false}]],
            "ErasTotalStake": [[[era], total.to_string()]],
        }}))
        .await
    }

    /// Sends the Asset Hub what the relay chain sends it at the end of a
    /// session: `StakingRcClient.relay_session_report` carried by a
    /// downward XCM message (`UnpaidExecution`, then `Transact` with origin
    /// kind `Superuser`, which the runtime's `ParentAsSuperuser` makes
    /// Root, as its `RelayChainOrigin` requires), in a new block built with
    /// chopsticks' `dev_newBlock` `dmp`. `points`: era
    /// points of (validator SS58, points); `activation`: (timestamp ms,
    /// era) when the relay chain activated the planned era's validators.
    pub async fn relay_session_report(
        &self,
        end_index: u32,
        points: &[(String, u32)],
        activation: Option<(u64, u32)>,
    ) -> Result<(), String> {
        use subxt::dynamic::Value;
        let meta = self.metadata().await?;
        let points = points
            .iter()
            .map(|(v, p)| {
                let a: subxt::utils::AccountId32 =
                    v.parse().map_err(|_| format!("validator {v}"))?;
                Ok(Value::unnamed_composite([
                    Value::from_bytes(a.0),
                    Value::u128(u128::from(*p)),
                ]))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let activation = match activation {
            Some((ms, era)) => Value::unnamed_variant(
                "Some",
                [Value::unnamed_composite([
                    Value::u128(u128::from(ms)),
                    Value::u128(u128::from(era)),
                ])],
            ),
            None => Value::unnamed_variant("None", []),
        };
        let report = Value::named_composite([
            ("end_index", Value::u128(u128::from(end_index))),
            ("validator_points", Value::unnamed_composite(points)),
            ("activation_timestamp", activation),
            ("leftover", Value::bool(false)),
        ]);
        self.relay_transact(
            &meta,
            "StakingRcClient",
            "relay_session_report",
            vec![report],
        )
        .await
    }

    /// Sends `pallet.call(fields)` as the relay chain does: a downward XCM
    /// message (`UnpaidExecution`, then `Transact` with origin kind
    /// `Superuser`, which the runtime's `ParentAsSuperuser` makes Root), in
    /// a new block built with chopsticks' `dev_newBlock` `dmp`; that block
    /// executes it (its message queue services it).
    async fn relay_transact(
        &self,
        meta: &std::sync::Arc<subxt::metadata::Metadata>,
        pallet: &str,
        call: &str,
        fields: Vec<subxt::dynamic::Value>,
    ) -> Result<(), String> {
        use subxt::dynamic::Value;
        let params = crate::tx::TxParams {
            genesis_hash: [0; 32],
            spec_version: 0,
            transaction_version: 0,
            nonce: 0,
            tip: 0,
            era_block: 0,
            era_block_hash: [0; 32],
            era_period: 64,
        };
        let call = crate::tx::dynamic_call_data(meta, &params, pallet, call, fields)
            .map_err(|e| e.to_string())?;
        let xcm = Value::unnamed_variant(
            "V5",
            [Value::unnamed_composite([Value::unnamed_composite([
                Value::named_variant(
                    "UnpaidExecution",
                    [
                        ("weight_limit", Value::unnamed_variant("Unlimited", [])),
                        ("check_origin", Value::unnamed_variant("None", [])),
                    ],
                ),
                Value::named_variant(
                    "Transact",
                    [
                        ("origin_kind", Value::unnamed_variant("Superuser", [])),
                        ("fallback_max_weight", Value::unnamed_variant("None", [])),
                        (
                            "call",
                            Value::named_composite([("encoded", Value::from_bytes(call))]),
                        ),
                    ],
                ),
            ])])],
        );
        let ty = meta
            .types()
            .types
            .iter()
            .find(|t| t.ty.path.segments == ["xcm", "VersionedXcm"])
            .map(|t| t.id)
            .ok_or("the runtime has no xcm::VersionedXcm type")?;
        let mut msg = Vec::new();
        subxt::ext::scale_value::scale::encode_as_type(&xcm, ty, meta.types(), &mut msg)
            .map_err(|e| format!("encoding the XCM message: {e}"))?;
        self.call(
            "dev_newBlock",
            json!([{"count": 1, "dmp": [{"sentAt": 1, "msg": format!("0x{}", hex::encode(msg))}]}]),
        )
        .await
        .map(|_| ())
    }

    /// The relay chain reports an offence of `validator` in the current
    /// session, to be slashed by `fraction_ppb` parts per billion
    /// (`StakingRcClient.relay_new_offence_paged`, as downward XCM).
    /// staking-async computes the slash of the validator and its nominators
    /// from the era's exposure and applies it `SlashDeferDuration` eras
    /// later.
    pub async fn relay_offence(&self, validator: &str, fraction_ppb: u32) -> Result<(), String> {
        use subxt::dynamic::Value;
        let meta = self.metadata().await?;
        let v: subxt::utils::AccountId32 = validator
            .parse()
            .map_err(|_| format!("validator {validator}"))?;
        let offence = Value::named_composite([
            ("offender", Value::from_bytes(v.0)),
            ("reporters", Value::unnamed_composite([])),
            ("slash_fraction", Value::u128(u128::from(fraction_ppb))),
        ]);
        let session = self.last_session_report().await?.map_or(0, |s| s + 1);
        self.relay_transact(
            &meta,
            "StakingRcClient",
            "relay_new_offence_paged",
            vec![Value::unnamed_composite([Value::unnamed_composite([
                Value::u128(u128::from(session)),
                offence,
            ])])],
        )
        .await
    }

    async fn metadata(&self) -> Result<std::sync::Arc<subxt::metadata::Metadata>, String> {
        self.meta
            .get_or_try_init(|| async {
                let m = self.call("state_getMetadata", json!([])).await?;
                let bytes = hex::decode(m.as_str().unwrap_or("").trim_start_matches("0x"))
                    .map_err(|e| e.to_string())?;
                crate::tx::metadata(&bytes).map_err(|e| e.to_string())
            })
            .await
            .cloned()
    }

    /// `StakingRcClient.LastSessionReportEndingIndex`.
    async fn last_session_report(&self) -> Result<Option<u32>, String> {
        let mut k = sp_crypto_hashing::twox_128(b"StakingRcClient").to_vec();
        k.extend(sp_crypto_hashing::twox_128(b"LastSessionReportEndingIndex"));
        let last = self
            .call("state_getStorage", json!([format!("0x{}", hex::encode(k))]))
            .await?;
        match last.as_str() {
            Some(h) => {
                let b = hex::decode(h.trim_start_matches("0x")).map_err(|e| e.to_string())?;
                let a: [u8; 4] = b.try_into().map_err(|_| "a session index is a u32")?;
                Ok(Some(u32::from_le_bytes(a)))
            }
            None => Ok(None),
        }
    }

    /// Ends the active era the way the relay chain does on Asset Hub: the
    /// planned era is `era` (`CurrentEra`, and `ForceEra = ForceNone` so the
    /// runtime plans no election of its own: the tests write each era's
    /// exposures, which no election here produces), and a session report
    /// activating it at `start_ms` makes the runtime end the active era
    /// (staking-async's own `end_era`: with Westend's `DisableMinting`, the
    /// general reward pot is snapshotted into the ending era's pot) and
    /// start `era`. `points` are the ending era's last session's points.
    pub async fn relay_starts_era(
        &self,
        era: u32,
        start_ms: u64,
        points: &[(String, u32)],
    ) -> Result<(), String> {
        self.set_storage(json!({"Staking": {"CurrentEra": era, "ForceEra": "ForceNone"}}))
            .await?;
        let next = self.last_session_report().await?.map_or(1, |s| s + 1);
        self.relay_session_report(next, points, Some((start_ms, era)))
            .await
    }

    /// Gives staking-async's general staker reward pot (Westend's Asset Hub:
    /// `PalletId(*b"py/stkng")`, sub-account `RewardPot::General(
    /// StakerRewards)`) `planck`, as the DAP pallet's budget would: at an
    /// era's end the runtime moves it, less the existential deposit, into
    /// that era's pot, which pays the era out.
    pub async fn fund_staker_reward_pot(&self, planck: u128) -> Result<(), String> {
        let mut a = [0u8; 32];
        a[..4].copy_from_slice(b"modl");
        a[4..12].copy_from_slice(b"py/stkng");
        // RewardPot::General(RewardKind::StakerRewards) = [0, 0], then zeros.
        self.fund(&subxt::utils::AccountId32(a).to_string(), planck)
            .await
    }

    /// staking-async (Asset Hub): writes `era`'s exposure of `validator` as
    /// the election would, in one page (`ErasStakersOverview`, page 0 of
    /// `ErasStakersPaged`, `ErasTotalStake`).
    pub async fn set_paged_exposure(
        &self,
        era: u32,
        validator: &str,
        own: u128,
        nominators: &[(String, u128)],
    ) -> Result<(), String> {
        let others: Vec<Value> = nominators
            .iter()
            .map(|(w, v)| json!({"who": w, "value": v.to_string()}))
            .collect();
        let page_total: u128 = nominators.iter().map(|(_, v)| v).sum();
        let total = own + page_total;
        self.set_storage(json!({"Staking": {
            "ErasStakersOverview": [[[era, validator], {
                "total": total.to_string(),
                "own": own.to_string(),
                "nominatorCount": nominators.len(),
                "pageCount": 1,
            }]],
            "ErasStakersPaged": [[[era, validator, 0], {
                "pageTotal": page_total.to_string(),
                "others": others,
            }]],
            "ErasTotalStake": [[[era], total.to_string()]],
        }}))
        .await
    }

    /// Gives `era` a validator payout of `planck`, all of its reward points
    /// earned by `validator`.
    pub async fn set_era_reward(
        &self,
        era: u32,
        validator: &str,
        planck: u128,
    ) -> Result<(), String> {
        self.set_storage(json!({"Staking": {
            "ErasValidatorReward": [[[era], planck.to_string()]],
            "ErasRewardPoints": [[[era], {"total": 20, "individual": {validator: 20}}]],
        }}))
        .await
    }

    /// Ends `era` and starts the next at `start_ms`: when the stash has
    /// `bonded` stake, `validator` earned all of `era`'s points and a payout
    /// of `reward`, and the next era exposes the stash's bond to it (beside
    /// its own stake; the exposure is written, as no election runs
    /// here). On Asset Hub the runtime itself ends the era, on the relay
    /// chain's session report ([`Chopsticks::relay_starts_era`]), paying
    /// `reward` from the general staker pot funded with it; on the relay
    /// chain's older pallet the era, its points and its payout are written.
    pub async fn next_era(
        &self,
        era: u32,
        start_ms: u64,
        validator: &str,
        stash: &str,
        bonded: u128,
        reward: u128,
    ) -> Result<(), String> {
        if self.paged {
            // Asset Hub: the runtime ends the era itself on the relay
            // chain's session report, paying it from the general pot.
            let mut points = Vec::new();
            if bonded > 0 {
                self.fund_staker_reward_pot(reward + ASSET_HUB_ED).await?;
                // The validator's own stake: 10,000 DOT. (Westend's fees are
                // in 12-decimal WND, so in the devnet's 10-decimal DOT a
                // transaction costs about 1 DOT: the pool's share of the
                // era's reward is kept well above that.)
                self.set_exposure(
                    era + 1,
                    validator,
                    10_000 * 10_000_000_000,
                    &[(stash.to_owned(), bonded)],
                )
                .await?;
                points.push((validator.to_owned(), 20));
            }
            return self.relay_starts_era(era + 1, start_ms, &points).await;
        }
        if bonded > 0 {
            self.set_era_reward(era, validator, reward).await?;
            self.set_exposure(
                era + 1,
                validator,
                1_000_000 * 10_000_000_000,
                &[(stash.to_owned(), bonded)],
            )
            .await?;
        }
        self.set_era(era + 1, start_ms).await
    }

    /// Signs `call` with `key` at the head (nonce, genesis and runtime from
    /// the node, mortal for 64 blocks) and submits it; its extrinsic hash.
    /// For transfers the tests and the devnet make from accounts other than
    /// the adapter's (an exchange's, the platform's).
    pub async fn submit(
        &self,
        call: &crate::tx::Call,
        key: &subxt_signer::sr25519::Keypair,
    ) -> Result<String, String> {
        let hex32 = |v: &Value| -> Result<[u8; 32], String> {
            hex::decode(v.as_str().unwrap_or("").trim_start_matches("0x"))
                .map_err(|e| e.to_string())?
                .try_into()
                .map_err(|_| "not 32 bytes".to_string())
        };
        let meta = self.metadata().await?;
        let who = subxt::utils::AccountId32(key.public_key().0).to_string();
        let genesis = self.call("chain_getBlockHash", json!([0])).await?;
        let v = self.call("state_getRuntimeVersion", json!([])).await?;
        let head = self.head_number().await?;
        let head_hash = self.call("chain_getBlockHash", json!([head])).await?;
        let nonce = self.call("system_accountNextIndex", json!([who])).await?;
        let p = crate::tx::TxParams {
            genesis_hash: hex32(&genesis)?,
            spec_version: v["specVersion"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("no specVersion")?,
            transaction_version: v["transactionVersion"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("no transactionVersion")?,
            nonce: nonce.as_u64().ok_or("no nonce")?,
            tip: 0,
            era_block: head,
            era_block_hash: hex32(&head_hash)?,
            era_period: 64,
        };
        let signed = crate::tx::sign(&meta, call, &p, key).map_err(|e| e.to_string())?;
        self.call(
            "author_submitExtrinsic",
            json!([format!("0x{}", hex::encode(&signed.bytes))]),
        )
        .await?;
        Ok(signed.hash)
    }

    /// The validators the staking pallet lists (`Staking.Validators` keys,
    /// SS58 prefix 42): on Asset Hub, the development preset's.
    pub async fn staking_validators(&self) -> Result<Vec<String>, String> {
        let mut prefix = sp_crypto_hashing::twox_128(b"Staking").to_vec();
        prefix.extend(sp_crypto_hashing::twox_128(b"Validators"));
        let prefix = format!("0x{}", hex::encode(prefix));
        let keys = self
            .call("state_getKeysPaged", json!([prefix, 100, prefix]))
            .await?;
        keys.as_array()
            .ok_or("state_getKeysPaged: not a list")?
            .iter()
            .map(|k| {
                let b = hex::decode(k.as_str().unwrap_or("").trim_start_matches("0x"))
                    .map_err(|e| e.to_string())?;
                let a: [u8; 32] = b
                    .get(b.len().saturating_sub(32)..)
                    .and_then(|s| s.try_into().ok())
                    .ok_or("a Staking.Validators key without an account")?;
                Ok(subxt::utils::AccountId32(a).to_string())
            })
            .collect()
    }

    /// The validators of the genesis session (SS58, prefix 42).
    pub async fn session_validators(&self) -> Result<Vec<String>, String> {
        let mut k = sp_crypto_hashing::twox_128(b"Session").to_vec();
        k.extend(sp_crypto_hashing::twox_128(b"Validators"));
        let v = self
            .call("state_getStorage", json!([format!("0x{}", hex::encode(k))]))
            .await?;
        let b = hex::decode(v.as_str().unwrap_or("").trim_start_matches("0x"))
            .map_err(|e| e.to_string())?;
        use subxt::ext::codec::Decode;
        let list = Vec::<[u8; 32]>::decode(&mut &b[..]).map_err(|e| e.to_string())?;
        Ok(list
            .into_iter()
            .map(|a| subxt::utils::AccountId32(a).to_string())
            .collect())
    }
}

/// The Westend Asset Hub runtime softstake's Polkadot work targets
/// (chains/dot/runtime: built once by scripts/build-asset-hub-runtime from
/// crates.io `asset-hub-westend-runtime` 0.57.0, spec 1_025_002, with
/// pallet-staking-async), compact and compressed.
pub fn asset_hub_wasm_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("runtime/asset-hub-westend-1025002.compact.compressed.wasm")
}

/// Writes a raw development chain spec for the runtime at `wasm` to `out`,
/// built by the runtime's own GenesisBuilder with its `preset`
/// (testnode/ah-genesis.mjs); returns what it printed ("spec NAME
/// VERSION").
pub async fn runtime_chain_spec(
    wasm: &std::path::Path,
    preset: &str,
    out: &std::path::Path,
) -> Result<String, String> {
    chopsticks_path()?;
    let o = tokio::process::Command::new("node")
        .arg("ah-genesis.mjs")
        .arg(wasm)
        .arg(preset)
        .arg(out)
        .current_dir(testnode_dir())
        .output()
        .await
        .map_err(|e| format!("node ah-genesis.mjs: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "ah-genesis.mjs failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
}
