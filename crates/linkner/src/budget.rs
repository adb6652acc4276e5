//! Budget-aware routing: how much LLM work a pipeline may ask for ([`RoutingBudget`]) and the
//! scheduler that keeps to it.
//!
//! The routing policy says which entities are *worth* an LLM call; the budget says how many
//! calls the LLM can *take*. Under a budget, the routed entities of every call and stream of one
//! pipeline (and its clones) wait for an LLM slot in one priority queue: the most uncertain
//! entity goes first, whichever document it comes from. A document with a latency budget never
//! waits past its deadline: an entity still queued then keeps its local label
//! ([`BudgetReason::Capacity`]), an answer still on its way is dropped and counted
//! ([`BudgetReason::Deadline`]). A call whose answer comes too late still finishes in the
//! background (holding its slot, so the capacity stays true to the server's load) and fills
//! the backend's answer cache when it has one.
//!
//! Without a budget, a pipeline sends every routed entity at once (the backend's own
//! `max_in_flight` bounds the calls) and waits for every answer, as in the batch runs.

use std::collections::BinaryHeap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::{LinkError, Result};

fn default_in_flight() -> usize {
    4
}

/// How much LLM work a pipeline may ask for.
///
/// In a config file (the `budget` section) or built in code:
///
/// ```
/// use std::time::Duration;
/// use linkner::RoutingBudget;
/// let b: RoutingBudget =
///     serde_json::from_str(r#"{"max_in_flight": 4, "latency_ms": 2000}"#).unwrap();
/// assert_eq!(b, RoutingBudget::new().max_in_flight(4).latency(Duration::from_secs(2)));
/// // The command-line form of `--llm-budget`:
/// let b: RoutingBudget = "in_flight=2,calls=1.5/s".parse().unwrap();
/// assert_eq!(b.calls_per_second, Some(1.5));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingBudget {
    /// Most LLM calls in flight at once (default 4: the slots `scripts/llm-server.sh` gives
    /// llama-server). Keep it at most the backend's own `max_in_flight`.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Most calls started per second (none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_second: Option<f64>,
    /// Most prompt tokens per second (none by default). A call's prompt tokens are estimated
    /// from the answers so far (their reported usage), before the first answer from the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_per_second: Option<f64>,
    /// Per-document latency budget in milliseconds: from the document's arrival (a stream) or
    /// the start of the call (`annotate*`) to its annotation. None: no deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

impl Default for RoutingBudget {
    fn default() -> Self {
        RoutingBudget::new()
    }
}

impl RoutingBudget {
    /// 4 calls in flight, no rate limit, no deadline.
    pub fn new() -> RoutingBudget {
        RoutingBudget {
            max_in_flight: default_in_flight(),
            calls_per_second: None,
            prompt_tokens_per_second: None,
            latency_ms: None,
        }
    }

    /// Sets [`max_in_flight`](RoutingBudget::max_in_flight).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Sets [`calls_per_second`](RoutingBudget::calls_per_second).
    pub fn calls_per_second(mut self, rate: f64) -> Self {
        self.calls_per_second = Some(rate);
        self
    }

    /// Sets [`prompt_tokens_per_second`](RoutingBudget::prompt_tokens_per_second).
    pub fn prompt_tokens_per_second(mut self, rate: f64) -> Self {
        self.prompt_tokens_per_second = Some(rate);
        self
    }

    /// Sets the per-document latency budget (rounded to milliseconds).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency_ms = Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// The per-document latency budget.
    pub fn latency_budget(&self) -> Option<Duration> {
        self.latency_ms.map(Duration::from_millis)
    }

    /// Checks the values: at least one call in flight, positive finite rates, a latency budget
    /// of at least 1 ms.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(LinkError::Config(format!("budget: {m}")));
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be at least 1".into());
        }
        for (name, rate) in [
            ("calls_per_second", self.calls_per_second),
            ("prompt_tokens_per_second", self.prompt_tokens_per_second),
        ] {
            if let Some(r) = rate
                && !(r.is_finite() && r > 0.0)
            {
                return bad(format!("{name} must be a positive number, got {r}"));
            }
        }
        if self.latency_ms == Some(0) {
            return bad("latency_ms must be at least 1".into());
        }
        Ok(())
    }
}

impl fmt::Display for RoutingBudget {
    /// The command-line form: `in_flight=4[,calls=R/s][,tokens=R/s][,latency=Nms]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in_flight={}", self.max_in_flight)?;
        if let Some(r) = self.calls_per_second {
            write!(f, ",calls={r}/s")?;
        }
        if let Some(r) = self.prompt_tokens_per_second {
            write!(f, ",tokens={r}/s")?;
        }
        if let Some(ms) = self.latency_ms {
            write!(f, ",latency={ms}ms")?;
        }
        Ok(())
    }
}

impl FromStr for RoutingBudget {
    type Err = LinkError;

    /// Parses `N` (calls in flight), `in_flight=N,calls=R/s,tokens=R/s,latency=Nms` (any
    /// subset, comma-separated; `latency` also takes `Ns`), or the JSON object.
    fn from_str(s: &str) -> Result<RoutingBudget> {
        let s = s.trim();
        let bad = |m: String| LinkError::Config(format!("budget `{s}`: {m}"));
        let budget = if s.starts_with('{') {
            serde_json::from_str(s).map_err(|e| bad(e.to_string()))?
        } else {
            let mut b = RoutingBudget::new();
            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (key, value) = part.split_once('=').unwrap_or(("in_flight", part));
                let rate = |v: &str| -> Result<f64> {
                    v.trim_end_matches("/s")
                        .parse::<f64>()
                        .map_err(|_| bad(format!("`{v}` is not a rate (e.g. 2/s)")))
                };
                match key.trim() {
                    "in_flight" | "max_in_flight" => {
                        b.max_in_flight = value
                            .parse()
                            .map_err(|_| bad(format!("`{value}` is not a count of calls")))?;
                    }
                    "calls" | "calls_per_second" => b.calls_per_second = Some(rate(value)?),
                    "tokens" | "prompt_tokens_per_second" => {
                        b.prompt_tokens_per_second = Some(rate(value)?);
                    }
                    "latency" | "latency_ms" => {
                        b.latency_ms = Some(parse_ms(value).ok_or_else(|| {
                            bad(format!("`{value}` is not a duration (e.g. 2000ms or 2s)"))
                        })?)
                    }
                    other => {
                        return Err(bad(format!(
                            "unknown key `{other}`; expected in_flight, calls, tokens or latency"
                        )));
                    }
                }
            }
            b
        };
        budget.validate()?;
        Ok(budget)
    }
}

/// `2000`, `2000ms` or `2s` as milliseconds.
fn parse_ms(v: &str) -> Option<u64> {
    let v = v.trim();
    if let Some(ms) = v.strip_suffix("ms") {
        return ms.trim().parse().ok();
    }
    if let Some(s) = v.strip_suffix('s') {
        let secs: f64 = s.trim().parse().ok()?;
        return (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).round() as u64);
    }
    v.parse().ok()
}

/// Why a routed entity kept its local label under a [`RoutingBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetReason {
    /// Never sent: the LLM was busy with more uncertain entities until the document's deadline
    /// (or the rate limit left no time for an answer before it).
    Capacity,
    /// Sent, but the answer had not come by the document's deadline: dropped, not waited for.
    Deadline,
}

impl BudgetReason {
    /// `capacity` or `deadline`.
    pub fn name(self) -> &'static str {
        match self {
            BudgetReason::Capacity => "capacity",
            BudgetReason::Deadline => "deadline",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scheduler

/// One waiting call: the most uncertain first, then the earliest.
struct Waiter {
    priority: f32,
    seq: u64,
    grant: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    /// The max-heap pops the highest priority, then the lowest sequence number.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.priority
            .total_cmp(&other.priority)
            .then(other.seq.cmp(&self.seq))
    }
}

struct State {
    in_flight: usize,
    waiting: BinaryHeap<Waiter>,
    next_seq: u64,
    /// Heap size at which closed waiters are swept out.
    sweep_at: usize,
    /// Earliest start of the next call under `calls_per_second`.
    calls_free: Option<Instant>,
    /// Earliest start of the next call under `prompt_tokens_per_second`.
    tokens_free: Option<Instant>,
    /// Answer times of the latest sent calls (a ring of [`RECENT`]).
    recent: Vec<Duration>,
    /// Where the next answer time goes in `recent`.
    recent_at: usize,
    /// Moving average of prompt tokens per call.
    prompt_tokens: Option<f64>,
}

/// The priority gate in front of the LLM (shared by every call of a pipeline and its clones).
pub(crate) struct Scheduler {
    budget: RoutingBudget,
    state: Mutex<State>,
}

/// Smallest heap size at which closed waiters are swept out.
const SWEEP_MIN: usize = 256;

/// Weight of a new observation in the moving average of prompt tokens.
const EWMA: f64 = 0.2;

/// Answer times kept for the estimate (their median: one cold or stuck call does not move it).
const RECENT: usize = 9;

impl State {
    /// The usual answer time: the median of the recent ones (0 before the first answer).
    fn latency(&self) -> Duration {
        let mut r = self.recent.clone();
        r.sort();
        r.get(r.len() / 2).copied().unwrap_or_default()
    }
}

impl Scheduler {
    pub(crate) fn new(budget: RoutingBudget) -> Scheduler {
        Scheduler {
            budget,
            state: Mutex::new(State {
                in_flight: 0,
                waiting: BinaryHeap::new(),
                next_seq: 0,
                sweep_at: SWEEP_MIN,
                calls_free: None,
                tokens_free: None,
                recent: Vec::with_capacity(RECENT),
                recent_at: 0,
                prompt_tokens: None,
            }),
        }
    }

    pub(crate) fn budget(&self) -> &RoutingBudget {
        &self.budget
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for an LLM slot in priority order (higher `priority` first). `Err` when the
    /// deadline passes first, or when the rate limit or the usual answer time leave no time
    /// for an answer before it. `chars`: the length of the request's text, for the first
    /// prompt-token estimate.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        priority: f32,
        deadline: Option<Instant>,
        chars: usize,
    ) -> std::result::Result<Slot, BudgetReason> {
        if let Some(rx) = self.enter(priority)
            && !self.granted(rx, deadline).await
        {
            return Err(BudgetReason::Capacity);
        }
        let mut slot = Slot {
            scheduler: Arc::clone(self),
            started: None,
        };
        // A slot is held (dropping `slot` hands it on). Reserve the start time under the rates.
        let start = self.reserve_start(deadline, chars)?;
        tokio::time::sleep_until(start).await;
        slot.started = Some(Instant::now());
        Ok(slot)
    }

    /// Takes a free slot at once (`None`), or queues a waiter of `priority` behind the calls
    /// in flight and returns the receiver its grant arrives on.
    fn enter(&self, priority: f32) -> Option<oneshot::Receiver<()>> {
        let mut st = self.lock();
        if st.in_flight < self.budget.max_in_flight && st.waiting.is_empty() {
            st.in_flight += 1;
            None
        } else {
            let (tx, rx) = oneshot::channel();
            let seq = st.next_seq;
            st.next_seq += 1;
            st.waiting.push(Waiter {
                priority,
                seq,
                grant: tx,
            });
            // Waiters that gave up stay in the heap until popped: sweep them now and then,
            // so that a long overload keeps memory flat.
            if st.waiting.len() >= st.sweep_at {
                st.waiting.retain(|w| !w.grant.is_closed());
                st.sweep_at = (2 * st.waiting.len()).max(SWEEP_MIN);
            }
            Some(rx)
        }
    }

    /// Waits for a queued waiter's grant until `deadline`: `true` when the slot was handed
    /// over; `false` when it did not come in time (a grant handed over meanwhile is passed
    /// on).
    async fn granted(&self, rx: oneshot::Receiver<()>, deadline: Option<Instant>) -> bool {
        let mut pending = PendingGrant {
            scheduler: self,
            rx: Some(rx),
        };
        let granted = match pending.rx.as_mut() {
            None => false,
            Some(rx) => match deadline {
                None => rx.await.is_ok(),
                Some(d) => matches!(tokio::time::timeout_at(d, rx).await, Ok(Ok(()))),
            },
        };
        if !granted {
            // `pending` is dropped here: a grant handed over meanwhile is passed on.
            return false;
        }
        pending.rx = None;
        true
    }

    /// Reserves the start of a call that holds a slot under the rate limits, and moves the
    /// limits' next free start past it. `Err` when the call could not answer before
    /// `deadline`: it would start too late, or the usual answer time does not fit.
    fn reserve_start(
        &self,
        deadline: Option<Instant>,
        chars: usize,
    ) -> std::result::Result<Instant, BudgetReason> {
        let mut st = self.lock();
        let now = Instant::now();
        let start = [st.calls_free, st.tokens_free]
            .into_iter()
            .flatten()
            .fold(now, Instant::max);
        // A call that cannot answer before the deadline (it would start too late, or the
        // usual answer time does not fit) would only hold a slot: skip it.
        if let Some(d) = deadline
            && start + st.latency() > d
        {
            // The estimate only learns from calls that are sent: let it decay with every
            // skip, so that slow answers (a cold server) cannot stop all later calls.
            for l in &mut st.recent {
                *l = l.mul_f64(0.95);
            }
            drop(st);
            return Err(BudgetReason::Capacity);
        }
        if let Some(r) = self.budget.calls_per_second {
            st.calls_free = Some(start + Duration::from_secs_f64(1.0 / r));
        }
        if let Some(r) = self.budget.prompt_tokens_per_second {
            let tokens = st.prompt_tokens.unwrap_or(chars as f64 / 4.0 + 1.0);
            st.tokens_free = Some(start + Duration::from_secs_f64(tokens / r));
        }
        Ok(start)
    }

    /// Hands a freed slot to the most urgent waiter still waiting, or frees it.
    fn release(&self) {
        let mut st = self.lock();
        while let Some(w) = st.waiting.pop() {
            if w.grant.send(()).is_ok() {
                return;
            }
        }
        st.in_flight = st.in_flight.saturating_sub(1);
    }

    /// Records a finished call (answer time and prompt tokens) in the moving averages.
    fn observe(&self, latency: Duration, prompt_tokens: Option<u64>) {
        let mut st = self.lock();
        if st.recent.len() < RECENT {
            st.recent.push(latency);
        } else {
            let at = st.recent_at;
            st.recent[at] = latency;
        }
        st.recent_at = (st.recent_at + 1) % RECENT;
        if let Some(t) = prompt_tokens.filter(|t| *t > 0) {
            let t = t as f64;
            st.prompt_tokens = Some(st.prompt_tokens.map_or(t, |p| p * (1.0 - EWMA) + t * EWMA));
        }
    }

    /// Calls holding a slot now, and calls waiting for one (for tests and metrics).
    pub(crate) fn load(&self) -> (usize, usize) {
        let st = self.lock();
        (st.in_flight, st.waiting.len())
    }
}

/// A queued [`Scheduler::acquire`]: dropped before its grant was taken (the deadline passed, or
/// the caller was cancelled), it passes on a grant that arrived meanwhile, so no slot is lost.
struct PendingGrant<'a> {
    scheduler: &'a Scheduler,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for PendingGrant<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            // Under the lock no grant can be sent: either one is already in `rx`, or closing
            // `rx` now makes the next release skip this waiter.
            let st = self.scheduler.lock();
            let granted = rx.try_recv().is_ok();
            drop(rx);
            drop(st);
            if granted {
                self.scheduler.release();
            }
        }
    }
}

/// A held LLM slot; dropping it hands the slot to the next waiter.
pub(crate) struct Slot {
    scheduler: Arc<Scheduler>,
    started: Option<Instant>,
}

impl Slot {
    /// Records the call's answer time (from the slot's start) and prompt tokens.
    pub(crate) fn finished(&self, prompt_tokens: Option<u64>) {
        if let Some(t) = self.started {
            self.scheduler.observe(t.elapsed(), prompt_tokens);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.scheduler.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_parses_from_the_command_line_and_json_and_refuses_nonsense() {
        let b: RoutingBudget = "3".parse().unwrap();
        assert_eq!(b, RoutingBudget::new().max_in_flight(3));
        let b: RoutingBudget = "in_flight=2, calls=1.5/s, tokens=800/s, latency=2s"
            .parse()
            .unwrap();
        assert_eq!(
            b,
            RoutingBudget::new()
                .max_in_flight(2)
                .calls_per_second(1.5)
                .prompt_tokens_per_second(800.0)
                .latency(Duration::from_millis(2000))
        );
        assert_eq!(b.to_string().parse::<RoutingBudget>().unwrap(), b);
        let j: RoutingBudget = r#"{"latency_ms": 250}"#.parse().unwrap();
        assert_eq!(j.latency_budget(), Some(Duration::from_millis(250)));
        assert_eq!(j.max_in_flight, 4);
        for bad in [
            "0",
            "calls=0/s",
            "calls=x",
            "latency=0",
            "speed=3",
            r#"{"max_in_flight": 1, "nope": 2}"#,
        ] {
            assert!(
                bad.parse::<RoutingBudget>().is_err(),
                "{bad} must be refused"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn slots_go_to_the_most_uncertain_waiter_first() {
        let s = Arc::new(Scheduler::new(RoutingBudget::new().max_in_flight(1)));
        let first = s.acquire(0.1, None, 10).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, p) in [0.2_f32, 0.9, 0.5, 0.9].into_iter().enumerate() {
            let s = s.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let slot = s.acquire(p, None, 10).await.unwrap();
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(slot);
            }));
            // Let the task queue itself before the next one.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(s.load(), (1, 4));
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        // 0.9 (queued first), 0.9 (queued later), 0.5, 0.2.
        assert_eq!(*order.lock().unwrap(), vec![1, 3, 2, 0]);
        assert_eq!(s.load(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_past_its_deadline_gives_up_and_no_slot_is_lost() {
        let s = Arc::new(Scheduler::new(RoutingBudget::new().max_in_flight(1)));
        let held = s.acquire(0.5, None, 10).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(100);
        let r = s.acquire(0.9, Some(deadline), 10).await;
        assert_eq!(r.err(), Some(BudgetReason::Capacity));
        assert!(Instant::now() >= deadline);
        drop(held);
        assert_eq!(s.load(), (0, 0), "the slot came back");
        let again = s.acquire(0.1, None, 10).await.unwrap();
        assert_eq!(s.load(), (1, 0));
        drop(again);
    }

    #[tokio::test(start_paused = true)]
    async fn the_call_rate_spaces_starts_and_skips_what_cannot_start_in_time() {
        let s = Arc::new(Scheduler::new(
            RoutingBudget::new().max_in_flight(8).calls_per_second(2.0),
        ));
        let t0 = Instant::now();
        let a = s.acquire(0.5, None, 10).await.unwrap();
        let b = s.acquire(0.5, None, 10).await.unwrap();
        assert_eq!(Instant::now() - t0, Duration::from_millis(500));
        // The next start is at 1 s: a deadline at 0.8 s cannot be met.
        let late = s
            .acquire(0.5, Some(t0 + Duration::from_millis(800)), 10)
            .await;
        assert_eq!(late.err(), Some(BudgetReason::Capacity));
        drop((a, b));
        assert_eq!(s.load(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_usual_answer_time_counts_against_the_deadline() {
        let s = Arc::new(Scheduler::new(RoutingBudget::new().max_in_flight(2)));
        // Answer times 300, 300 and one stuck 5 s call: the median (300 ms) is the estimate.
        for ms in [300, 5000, 300] {
            let slot = s.acquire(0.5, None, 10).await.unwrap();
            tokio::time::sleep(Duration::from_millis(ms)).await;
            slot.finished(Some(120));
        }
        let now = Instant::now();
        let r = s
            .acquire(0.5, Some(now + Duration::from_millis(200)), 10)
            .await;
        assert_eq!(
            r.err(),
            Some(BudgetReason::Capacity),
            "300 ms answers, 200 ms left"
        );
        assert!(
            s.acquire(0.5, Some(now + Duration::from_millis(400)), 10)
                .await
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cold_first_answer_does_not_stop_all_later_calls() {
        let s = Arc::new(Scheduler::new(RoutingBudget::new().max_in_flight(1)));
        let slot = s.acquire(0.5, None, 10).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        slot.finished(None);
        drop(slot);
        // 1 s per document: skipped at first, sent again once the estimate has decayed.
        let mut skipped = 0;
        loop {
            let d = Instant::now() + Duration::from_secs(1);
            match s.acquire(0.5, Some(d), 10).await {
                Err(_) => skipped += 1,
                Ok(_) => break,
            }
            assert!(skipped < 100, "never sent again");
        }
        assert!(skipped > 10, "{skipped}");
    }
}
