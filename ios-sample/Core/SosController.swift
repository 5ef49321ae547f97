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
    case raised(Sos)
    case failed(String)

    var isArming: Bool {
        switch self {
        case .holding, .cancelWindow: return true
        default: return false
        }
    }
}

/// The SOS button: press and hold for `holdMs`, then `cancelWindowMs` to cancel before the
/// alarm is stored. A cancel inside the window stores and sends nothing. After it, the alarm
/// stands; `cancelRaised` sends a cancellation and dispatch still sees both.
///
/// `onChange` is called on the caller's or the scheduler's thread; it must not block.
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

    func press() {
        locked {
            switch current {
            case .idle, .failed: break
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
