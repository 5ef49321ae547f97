import CrewSafe
import SwiftUI

/// The incident report form. Every change is autosaved as a draft; "Send" finalizes it.
struct ReportView: View {
    @EnvironmentObject private var model: AppModel

    private static let kinds: [IncidentKind] =
        [.verbalAbuse, .threat, .physicalAssault, .armedAssault, .damageToVehicleOrEquipment, .obstructionOfCrew, .other]
    private static let severities: [Severity] = [.low, .moderate, .serious, .critical]

    var body: some View {
        NavigationStack {
            Form {
                Section("What happened") {
                    Picker("Kind", selection: field(\.kind)) {
                        Text("—").tag(IncidentKind?.none)
                        ForEach(Self.kinds, id: \.self) { Text("\($0)").tag(Optional($0)) }
                    }
                    Picker("Severity", selection: field(\.severity)) {
                        Text("—").tag(Severity?.none)
                        ForEach(Self.severities, id: \.self) { Text("\($0)").tag(Optional($0)) }
                    }
                    DatePicker("Occurred", selection: Binding(
                        get: { fields.occurredAt ?? Date() },
                        set: { d in model.editor?.edit { $0.occurredAt = d } }))
                    TextField("Narrative (required)", text: text(\.narrative), axis: .vertical).lineLimit(3...8)
                    TextField("Address", text: text(\.address))
                    TextField("Perpetrator", text: text(\.perpetratorDescription), axis: .vertical)
                }
                Section("People") {
                    Toggle("A crew member was harmed", isOn: Binding(
                        get: { !fields.staffHarmed.isEmpty },
                        set: { on in model.editor?.edit {
                            $0.staffHarmed = on ? [HarmedStaff(role: .paramedic, name: nil, injuryDescription: nil)] : []
                        } }))
                    Toggle("Police called", isOn: Binding(
                        get: { fields.policeCalled ?? false },
                        set: { on in model.editor?.edit { $0.policeCalled = on } }))
                }
                Section {
                    Text(status).font(.footnote)
                    Button("Send") { model.editor?.finalizeReport() }
                    Button("Discard draft", role: .destructive) { model.editor?.discard() }
                }
            }
            .navigationTitle("Incident report")
        }
    }

    /// The editor's current fields (updated synchronously on every edit).
    private var fields: IncidentFields { model.editor?.state.fields ?? IncidentFields() }

    private func field<T>(_ path: WritableKeyPath<IncidentFields, T>) -> Binding<T> {
        Binding(get: { fields[keyPath: path] }, set: { v in model.editor?.edit { $0[keyPath: path] = v } })
    }

    private func text(_ path: WritableKeyPath<IncidentFields, String?>) -> Binding<String> {
        Binding(get: { fields[keyPath: path] ?? "" },
                set: { v in model.editor?.edit { $0[keyPath: path] = v.isEmpty ? nil : v } })
    }

    private var status: String {
        let s = model.draft
        if let r = s.report { return "Sent to the queue (\(r.syncState)). Discard to start a new report." }
        if let f = s.fieldError { return "Fix \(f.field): \(f.reason)" }
        if let e = s.error { return e }
        if s.dirty { return "Editing…" }
        if s.draftId != nil {
            return "Draft saved (revision \(s.revision))"
                + (s.conflictsMerged > 0 ? " — merged \(s.conflictsMerged) change(s) from another screen" : "")
        }
        return "New report"
    }
}
