import Foundation
#if canImport(CrewSafe)
import CrewSafe
#endif

/// Where the SOS button is.
enum SosPhase: Equatable {
    case idle
    /// The button is held; released before `armedAtMs` nothing happens.
    case holding(armedAtMs: Int64)
    /// Last chance to cancel: nothing is stored yet; the SOS is raised at `raiseAtMs`.
    case cancelWindow(raiseAtMs: Int64)
    /// Stored and queued (first in line); it leaves the phone as soon as there is a network.
    /// The `Sos` is re-read whenever the library reports a change (delivered, acknowledged,
    /// resolved, a new dispatcher message), so it always holds the latest dispatch answer.
    case raised(Sos)
    case failed(String)

    var isArming: Bool {
        switch self {
        case .holding, .cancelWindow: return true
        default: return false
        }
    }

    /// The raised alarm, if any.
    var raisedSos: Sos? {
        if case .raised(let sos) = self { return sos }
        return nil
    }

    /// Raised, and dispatch resolved it or the crew cancelled it: a new SOS may be raised.
    var isFinished: Bool { raisedSos?.isFinished ?? false }
}

/// The SOS button: press and hold for `holdMs`, then `cancelWindowMs` to cancel before the
/// alarm is stored. A cancel inside the window stores and sends nothing. After it, the alarm
/// stands; `cancelRaised` sends a cancellation and dispatch still sees both.
///
/// While `start`ed it listens to record changes and keeps a raised alarm's phase up to date:
/// once the host says the network is up the library delivers the SOS and watches dispatch by
/// itself, so "help is on the way" and the dispatcher's message arrive with no sync call.
///
/// `onChange` is called on the caller's, the scheduler's or a library thread; it must not
/// block.
final class SosController: @unchecked Sendable {
    let holdMs: Int64
    let cancelWindowMs: Int64
    var onChange: ((SosPhase) -> Void)?

    private let store: CrewStore
    private let crew: () -> CrewIdentity
    private let scheduler: Scheduler
    private let fixes: FixSource
    private let onQueued: () -> Void
    private let lock = NSRecursiveLock()
    private var timer: Cancellable?
    private var generation = 0 // a timer that fires after being cancelled is ignored
    private var current = SosPhase.idle
    private var subscription: Subscription?

    init(store: CrewStore, crew: @escaping () -> CrewIdentity, scheduler: Scheduler,
         fixes: FixSource = NoFix(), holdMs: Int64 = 1_500, cancelWindowMs: Int64 = 5_000,
         onQueued: @escaping () -> Void = {}) {
        self.store = store
        self.crew = crew
        self.scheduler = scheduler
        self.fixes = fixes
        self.holdMs = holdMs
        self.cancelWindowMs = cancelWindowMs
        self.onQueued = onQueued
    }

    var phase: SosPhase { locked { current } }

    /// Shows an SOS that is still active (raised before the app was restarted).
    func restore() {
        locked {
            guard current == .idle, let records = try? store.listRecords() else { return }
            for e in records.reversed() where e.kind == .sos && e.dispatchStatus != .resolved {
                if let sos = try? store.getSos(sosId: e.id), sos.state == .active {
                    set(.raised(sos))
                    return
                }
            }
        }
    }

    /// Starts following record changes (delivery, dispatch answers) of the raised alarm.
    func start() {
        locked {
            guard subscription == nil else { return }
            subscription = store.subscribeRecords(listener: SosRecordForwarder(self))
            refresh()
        }
    }

    /// Stops following record changes.
    func stop() {
        locked {
            subscription?.cancel()
            subscription = nil
        }
    }

    /// Re-reads the raised alarm and publishes a new `.raised` phase if anything changed.
    /// Called for every SOS record change; callable any time.
    func refresh() {
        locked {
            guard case .raised(let shown) = current,
                  // Unreadable (e.g. purged long after delivery): keep what is shown.
                  let fresh = try? store.getSos(sosId: shown.id), fresh != shown else { return }
            set(.raised(fresh))
        }
    }

    fileprivate func changed(_ change: RecordChange) {
        switch change.kind {
        // The alarm itself (delivery, dispatch status and message), its cancellation or a
        // follow-up location: re-read it.
        case .sos, .sosCancel, .sosLocation: refresh()
        case .incidentReport, .checkInStart, .checkInExtend, .checkInDone: break
        }
    }

    /// The text under the button for the current phase: the hold and cancel countdowns, or for
    /// a raised alarm "Sent — waiting for dispatch", "Help is on the way — acknowledged by …"
    /// with the dispatcher's message, "Resolved by dispatch".
    func statusText(timeZone: TimeZone = .current) -> String {
        switch phase {
        case .idle: return "Press and hold for \(Double(holdMs) / 1000) s"
        case .holding: return "Keep holding…"
        case .cancelWindow(let raiseAt):
            let left = max(0, (raiseAt - scheduler.nowMs() + 999) / 1000)
            return "Sending in \(left) s — cancel now if by mistake"
        case .raised(let sos): return sosStatus(sos, timeZone: timeZone).text
        case .failed(let reason): return "Could not raise the SOS: \(reason)"
        }
    }

    /// Whether "Cancel the SOS…" makes sense: raised, and neither resolved nor cancelled.
    var canCancelRaised: Bool {
        let p = phase
        return p.raisedSos != nil && !p.isFinished
    }

    /// Starts the hold. A raised alarm blocks a second one until dispatch resolved it.
    func press() {
        locked {
            switch current {
            case .idle, .failed: break
            case .raised where current.isFinished: break
            default: return
            }
            set(.holding(armedAtMs: scheduler.nowMs() + holdMs))
            startTimer(holdMs) { self.openWindow() }
        }
    }

    /// Released before the hold completed: nothing happens. Later releases do not cancel.
    func release() {
        locked { if case .holding = current { reset() } }
    }

    /// Cancels during the hold or the window: nothing is stored or sent.
    func cancel() {
        locked { if current.isArming { reset() } }
    }

    /// Skips the rest of the window ("send now").
    func raiseNow() {
        locked { if current.isArming { raise() } }
    }

    /// Cancels a raised SOS: the alarm is kept and delivered, followed by the cancellation.
    @discardableResult
    func cancelRaised(reason: CancelReason, note: String? = nil) -> Bool {
        locked {
            guard case .raised(let sos) = current else { return false }
            do {
                _ = try store.cancelSos(sosId: sos.id, reason: reason, note: note)
                onQueued()
                set(.idle)
                return true
            } catch {
                set(.failed(describe(error)))
                return false
            }
        }
    }

    /// Clears a resolved alarm from the screen (an open one stays).
    func dismiss() {
        locked { if current.isFinished { set(.idle) } }
    }

    private func openWindow() {
        set(.cancelWindow(raiseAtMs: scheduler.nowMs() + cancelWindowMs))
        startTimer(cancelWindowMs) { self.raise() }
    }

    private func raise() {
        stopTimer()
        do {
            let sos = try store.raiseSos(crew: crew(), location: fixes.lastFix(), note: nil)
            set(.raised(sos))
            onQueued()
        } catch {
            set(.failed(describe(error)))
        }
    }

    private func startTimer(_ delayMs: Int64, _ action: @escaping () -> Void) {
        stopTimer()
        let gen = generation
        timer = scheduler.schedule(afterMs: delayMs) { [weak self] in
            guard let self else { return }
            self.locked { if gen == self.generation { action() } }
        }
    }

    private func stopTimer() {
        generation += 1
        timer?.cancel()
        timer = nil
    }

    private func reset() {
        stopTimer()
        set(.idle)
    }

    private func set(_ p: SosPhase) {
        current = p
        onChange?(p)
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}

/// The library's record listener, forwarding to the controller (held weakly: the store keeps
/// its listeners until the subscription is cancelled).
private final class SosRecordForwarder: RecordListener, @unchecked Sendable {
    weak var controller: SosController?
    init(_ controller: SosController) { self.controller = controller }
    func onRecordChanged(change: RecordChange) throws { controller?.changed(change) }
}

/// What the crew is told about a raised alarm: `headline` ("Help is on the way — acknowledged
/// by … at 14:05") and the dispatcher's latest `message`, if any.
struct SosStatus: Equatable {
    var headline: String
    var message: String?
    /// Dispatch acknowledged it (and has not resolved it yet).
    var helpOnTheWay = false

    /// Both, for one text view.
    var text: String { message.map { "\(headline)\nDispatch: \($0)" } ?? headline }
}

/// The status line of `sos`; times of day in `timeZone`.
func sosStatus(_ sos: Sos, timeZone: TimeZone = .current) -> SosStatus {
    let answer = sos.dispatch
    let message = answer?.message.flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
    if sos.state == .cancelled {
        let told = sos.cancellation?.syncState == .delivered
        return SosStatus(headline: told ? "Cancelled — dispatch was told" : "Cancelled — telling dispatch",
                         message: message)
    }
    switch sos.dispatchStatus ?? answer?.status {
    case .resolved:
        let at = answer?.resolvedAt.map { " at \(hhmm($0, timeZone: timeZone))" } ?? ""
        return SosStatus(headline: "Resolved by dispatch" + at, message: message)
    case .acknowledged:
        let who = answer?.acknowledgedBy.flatMap { $0.isEmpty ? nil : $0 } ?? "dispatch"
        let at = (answer?.acknowledgedAt ?? answer?.updatedAt).map { " at \(hhmm($0, timeZone: timeZone))" } ?? ""
        return SosStatus(headline: "Help is on the way — acknowledged by \(who)" + at, message: message,
                         helpOnTheWay: true)
    case .delivered, nil:
        switch sos.syncState {
        case .delivered: return SosStatus(headline: "Sent — waiting for dispatch", message: message)
        case .sending: return SosStatus(headline: "Sending the SOS…")
        case .wedged: return SosStatus(headline: "The server did not accept the SOS — see Records; call dispatch")
        case .queued, .draft: return SosStatus(headline: "SOS stored — it is sent as soon as there is a network")
        }
    }
}

extension Sos {
    /// Dispatch resolved it, or the crew cancelled it.
    var isFinished: Bool { state == .cancelled || (dispatchStatus ?? dispatch?.status) == .resolved }
}

/// "14:05" in `timeZone`.
func hhmm(_ date: Date, timeZone: TimeZone = .current) -> String {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = timeZone
    f.dateFormat = "HH:mm"
    return f.string(from: date)
}
