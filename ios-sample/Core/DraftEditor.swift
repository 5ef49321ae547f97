import Foundation
#if canImport(CrewSafe)
import CrewSafe
#endif

struct FieldError: Equatable {
    let field: String
    let reason: String
}

struct DraftState: Equatable {
    var draftId: String?
    /// The stored revision `fields` are based on (0: not saved yet).
    var revision: UInt64 = 0
    var fields = IncidentFields()
    /// Edits not saved yet.
    var dirty = false
    /// How many times a save met another screen's newer revision and merged it.
    var conflictsMerged = 0
    var fieldError: FieldError?
    var error: String?
    /// Set once the draft was finalized and queued.
    var report: IncidentReport?
}

/// The report form's model: every edit is autosaved `autosaveMs` after the last one, with the
/// draft revision the editor last saw. If another screen saved meanwhile (`Conflict`), the
/// stored version is read and merged field by field: fields this editor changed win, the other
/// screen's changes to the remaining fields are kept. The draft itself is created by the first
/// save, so opening the form alone leaves nothing behind.
final class DraftEditor: @unchecked Sendable {
    let autosaveMs: Int64
    var onChange: ((DraftState) -> Void)?

    private let store: CrewStore
    private let scheduler: Scheduler
    private let crew: () -> CrewIdentity
    private let onQueued: () -> Void
    private let lock = NSRecursiveLock()
    private var current = DraftState()
    private var base = IncidentFields() // what the store holds at current.revision
    private var pending: Cancellable?

    init(store: CrewStore, scheduler: Scheduler, crew: @escaping () -> CrewIdentity,
         autosaveMs: Int64 = 1_000, onQueued: @escaping () -> Void = {}) {
        self.store = store
        self.scheduler = scheduler
        self.crew = crew
        self.autosaveMs = autosaveMs
        self.onQueued = onQueued
    }

    var state: DraftState { locked { current } }

    /// Continues the newest unfinished draft, if there is one.
    @discardableResult
    func resumeLatest() -> Bool {
        locked {
            guard let draft = (try? store.listDrafts())?.last else { return false }
            base = draft.fields
            set(DraftState(draftId: draft.id, revision: draft.revision, fields: draft.fields))
            return true
        }
    }

    /// Applies an edit now and schedules the autosave.
    func edit(_ change: (inout IncidentFields) -> Void) {
        locked {
            guard current.report == nil else { return }
            var s = current
            change(&s.fields)
            s.dirty = true
            s.fieldError = nil
            s.error = nil
            set(s)
            pending?.cancel()
            pending = scheduler.schedule(afterMs: autosaveMs) { [weak self] in _ = self?.saveNow() }
        }
    }

    /// Saves pending edits now. Returns false (and sets an error) if they could not be saved.
    @discardableResult
    func saveNow() -> Bool {
        locked {
            pending?.cancel()
            pending = nil
            guard current.dirty, current.report == nil else { return true }
            do {
                if let id = current.draftId {
                    try saveMerging(id)
                } else {
                    let d = try store.createDraft(crew: crew(), fields: current.fields)
                    base = d.fields
                    var s = current
                    (s.draftId, s.revision, s.fields, s.dirty) = (d.id, d.revision, d.fields, false)
                    set(s)
                }
                return true
            } catch {
                record(error)
                return false
            }
        }
    }

    private func saveMerging(_ id: String) throws {
        var revision = current.revision
        var fields = current.fields
        var merges = 0
        while true {
            do {
                let saved = try store.updateDraft(draftId: id, expectedRevision: revision, fields: fields)
                base = fields
                var s = current
                (s.revision, s.fields, s.dirty) = (saved.revision, fields, false)
                s.conflictsMerged += merges
                set(s)
                return
            } catch CrewSafeError.Conflict {
                merges += 1
                if merges > 3 { throw CrewSafeError.Conflict(currentRevision: revision) }
                let theirs = try store.getDraft(draftId: id)
                fields = merge(base: base, mine: fields, theirs: theirs.fields)
                base = theirs.fields
                revision = theirs.revision
            }
        }
    }

    /// Saves, then finalizes the draft into a queued report. A missing or bad field is reported
    /// in `fieldError`. If another screen changed the draft after this one saved, nothing is
    /// sent: its version is loaded for the user to check first.
    @discardableResult
    func finalizeReport() -> IncidentReport? {
        locked {
            guard saveNow() else { return nil }
            guard let id = current.draftId else {
                var s = current
                s.error = "Nothing to send yet: fill in the report first."
                set(s)
                return nil
            }
            do {
                let report = try store.finalizeDraft(draftId: id, expectedRevision: current.revision)
                var s = current
                (s.report, s.fieldError, s.error) = (report, nil, nil)
                set(s)
                onQueued()
                return report
            } catch CrewSafeError.Conflict {
                guard let theirs = try? store.getDraft(draftId: id) else { return nil }
                base = theirs.fields
                var s = current
                (s.revision, s.fields, s.dirty) = (theirs.revision, theirs.fields, false)
                s.error = "The draft was changed on another screen: check it and send again."
                set(s)
                return nil
            } catch {
                record(error)
                return nil
            }
        }
    }

    /// Deletes the draft and starts over with an empty form.
    func discard() {
        locked {
            pending?.cancel()
            if let id = current.draftId, current.report == nil { try? store.deleteDraft(draftId: id) }
            base = IncidentFields()
            set(DraftState())
        }
    }

    private func record(_ error: Error) {
        var s = current
        if case CrewSafeError.InvalidInput(let field, let reason) = error {
            s.fieldError = FieldError(field: field, reason: reason)
        } else {
            s.error = describe(error)
        }
        set(s)
    }

    private func set(_ s: DraftState) {
        current = s
        onChange?(s)
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}

/// Three-way merge: a field changed in `mine` (against `base`) wins, otherwise `theirs`.
func merge(base: IncidentFields, mine: IncidentFields, theirs: IncidentFields) -> IncidentFields {
    func pick<T: Equatable>(_ path: KeyPath<IncidentFields, T>) -> T {
        mine[keyPath: path] != base[keyPath: path] ? mine[keyPath: path] : theirs[keyPath: path]
    }
    return IncidentFields(
        occurredAt: pick(\.occurredAt), location: pick(\.location), address: pick(\.address),
        kind: pick(\.kind), severity: pick(\.severity), staffHarmed: pick(\.staffHarmed),
        perpetratorDescription: pick(\.perpetratorDescription), witnesses: pick(\.witnesses),
        policeCalled: pick(\.policeCalled), policeReportNumber: pick(\.policeReportNumber),
        dispatchCallNumber: pick(\.dispatchCallNumber), narrative: pick(\.narrative))
}
