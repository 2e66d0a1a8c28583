package runner

// Result is result.json (results/schema.json describes it).
type Result struct {
	SchemaVersion   int                     `json:"schemaVersion"`
	Experiment      string                  `json:"experiment"`
	File            string                  `json:"file"`
	RunID           string                  `json:"runId"`
	Backend         string                  `json:"backend"`
	Seed            uint64                  `json:"seed"`
	SafetyMode      string                  `json:"safetyMode"`
	Sets            []string                `json:"sets"`
	Replay          string                  `json:"replay"`
	VirtualTime     bool                    `json:"virtualTime"`
	DurationMs      int64                   `json:"durationMs"`
	WallMs          int64                   `json:"wallMs"`
	Linearizability Linearizability         `json:"linearizability"`
	Expectations    Expectations            `json:"expectations"`
	Operations      OpCounts                `json:"operations"`
	Latency         map[string]LatencyGroup `json:"latency"`
	Throughput      Throughput              `json:"throughput"`
	Failovers       []Failover              `json:"failovers"`
	Reconfigs       []Reconfiguration       `json:"reconfigurations"`
	Invariants      []string                `json:"invariantViolations"`
	Elections       []ElectionRecord        `json:"elections"`
	Configurations  []string                `json:"configurations"`
	// ConfigHistory is "complete" (every committed configuration, sim) or
	// "sampled" (status samples, local: consecutive configurations are
	// then not checked against each other).
	ConfigHistory string       `json:"configurationHistory"`
	Steps         []StepRecord `json:"steps"`
	// Notes are errors the run recovered from without failing a step,
	// such as a random fault that could not be applied.
	Notes []string `json:"notes"`
	// Coverage says whether the run reached the windows it meant to test:
	// a clean run whose membership changes never met a fault is no
	// evidence about changes under faults.
	Coverage   Coverage          `json:"coverage"`
	Files      map[string]string `json:"files"`
	BackendDir string            `json:"backendDir,omitempty"`
}

// Linearizability is porcupine's verdict.
type Linearizability struct {
	Verdict         string `json:"verdict"` // ok | illegal | unknown
	Operations      int    `json:"operations"`
	UnknownOutcomes int    `json:"unknownOutcomes"`
	CheckMs         int64  `json:"checkMs"`
}

// Expectations are the file's expect: with what was observed.
type Expectations struct {
	Met   bool          `json:"met"`
	Items []Expectation `json:"items"`
}

// Expectation is one expected value and the observed one.
type Expectation struct {
	Name     string `json:"name"`
	Expected any    `json:"expected"`
	Observed any    `json:"observed"`
	Met      bool   `json:"met"`
}

// OpCounts counts the history by outcome.
type OpCounts struct {
	Total   int `json:"total"`
	OK      int `json:"ok"`
	Failed  int `json:"failed"`
	Unknown int `json:"unknown"`
}

// LatencyGroup is one operation type's latency, overall and per phase.
type LatencyGroup struct {
	All    Latency            `json:"all"`
	Phases map[string]Latency `json:"phases"`
}

// Latency is an HDR histogram's summary (acknowledged operations only).
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50Ms"`
	P95   float64 `json:"p95Ms"`
	P99   float64 `json:"p99Ms"`
	P999  float64 `json:"p999Ms"`
	Max   float64 `json:"maxMs"`
	// HDR is the histogram in HdrHistogram's compressed base64 form
	// (microseconds), so runs can be merged.
	HDR string `json:"hdr"`
}

// Throughput is acknowledged operations per second.
type Throughput struct {
	OpsPerSec float64 `json:"opsPerSec"`
	// Series is acknowledged operations per interval of IntervalMs.
	IntervalMs int64 `json:"intervalMs"`
	Series     []int `json:"series"`
}

// Failover is one loss of leadership and the recovery of writes.
type Failover struct {
	From       string `json:"from"`
	To         string `json:"to"`
	LostAtMs   int64  `json:"lostAtMs"`
	FirstAckMs int64  `json:"firstAckMs"`
	// DowntimeMs is from the loss to the first acknowledged write; -1 if
	// no write was acknowledged after it.
	DowntimeMs int64 `json:"downtimeMs"`
}

// Reconfiguration is one membership change carried out by the driver.
type Reconfiguration struct {
	From       []string         `json:"from"`
	To         []string         `json:"to"`
	StartMs    int64            `json:"startMs"`
	EndMs      int64            `json:"endMs"` // -1: not done when the run ended
	Done       bool             `json:"done"`
	PhasesMs   map[string]int64 `json:"phasesMs"`
	CatchUpB   *uint64          `json:"catchUpBytes"`
	Steps      []string         `json:"steps"`
	LastReason string           `json:"lastReason"`
}

// ElectionRecord is one won election.
type ElectionRecord struct {
	AtMs       int64    `json:"atMs"`
	Leader     string   `json:"leader"`
	Term       uint64   `json:"term"`
	Granted    []string `json:"granted"`
	Counted    string   `json:"countedIn"`
	LogConfig  string   `json:"logConfig"`
	NonMembers []string `json:"nonMembers,omitempty"`
}

// StepRecord is one step as it ran.
type StepRecord struct {
	Index  int    `json:"index"`
	Action string `json:"action"`
	// Kind is a random fault's kind (random: kinds:, e.g. pauseLeader),
	// "" for other steps; Trigger the membership state that triggered it
	// (random: on:), "" if it came on the fault schedule.
	Kind    string `json:"kind,omitempty"`
	Trigger string `json:"trigger,omitempty"`
	Label   string `json:"label"`
	StartMs int64  `json:"startMs"`
	EndMs   int64  `json:"endMs"`
	OK      bool   `json:"ok"`
	Note    string `json:"note,omitempty"`
}

// HistoryEntry is one line of history.jsonl.
type HistoryEntry struct {
	Client   string `json:"client"`
	Node     string `json:"node"`
	Op       string `json:"op"`
	Key      string `json:"key"`
	Value    string `json:"value,omitempty"`
	Found    *bool  `json:"found,omitempty"`
	Outcome  string `json:"outcome"`
	CallNs   int64  `json:"callNs"`
	ReturnNs int64  `json:"returnNs"`
	Err      string `json:"error,omitempty"`
	Phase    string `json:"phase"`
	// IntendedNs is the open-loop schedule time (latency is measured from
	// it, so a stalled cluster shows in the latency).
	IntendedNs int64 `json:"intendedNs"`
}

// Coverage counts membership changes and the faults they met.
type Coverage struct {
	// Changes are the membership changes started (reconfigure and scale
	// steps, random changes); ChangesDone those the driver finished.
	Changes     int `json:"changes"`
	ChangesDone int `json:"changesDone"`
	// NoOpChanges asked for the voters the leader already had.
	NoOpChanges int `json:"noOpChanges"`
	// ChangesUnderFault met a fault, strictly (docs/EXPERIMENTS.md,
	// "Coverage"): a fault whose interval overlaps the change's (its
	// first driver step's start to its last step's end) by at least one
	// heartbeat and that touches the change's members (the committed
	// voters at its start, both halves when joint, the voters asked for,
	// the learners added; less the nodes dead for good): a network fault
	// (ChangesUnderNetworkFault: a faulted link with both ends members)
	// or a node fault (ChangesUnderNodeFault: a member down or paused).
	ChangesUnderFault        int `json:"changesUnderFault"`
	ChangesUnderNetworkFault int `json:"changesUnderNetworkFault"`
	ChangesUnderNodeFault    int `json:"changesUnderNodeFault"`
	// MembershipSteps are the driver steps (AddLearner, EnterJoint, ...),
	// each once with its retries and polls (CommitNew belongs to the
	// step it waits for); StepsUnderFault those that met a fault by the
	// same rule over the step's interval (its start to the next step's)
	// and EnterJointUnderFault the joint (or unsafe one-step) entries
	// among them.
	MembershipSteps      int `json:"membershipSteps"`
	StepsUnderFault      int `json:"stepsUnderFault"`
	EnterJointUnderFault int `json:"enterJointUnderFault"`
	// Faults are the random faults applied (not transferLeader nor a
	// reconfigure drawn as a fault: those are actions), TriggeredFaults
	// those a membership state triggered (random on:, once per change
	// and state), MaxConcurrentFaults the most random faults in force at
	// once.
	Faults              int `json:"faults"`
	TriggeredFaults     int `json:"triggeredFaults"`
	MaxConcurrentFaults int `json:"maxConcurrentFaults"`
}
