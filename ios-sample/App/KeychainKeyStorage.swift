import Foundation
import Security

/// The store's data key as a Keychain generic-password item, accessible
/// `AfterFirstUnlockThisDeviceOnly`: readable while the phone is locked (an SOS must work then),
/// never synced to iCloud Keychain and never restored onto another device.
final class KeychainKeyStorage: KeyStorage {
    private let service = "kz.crewsafe.sample.data-key"
    private let account = "crewsafe"

    private var query: [String: Any] {
        [kSecClass as String: kSecClassGenericPassword,
         kSecAttrService as String: service,
         kSecAttrAccount as String: account]
    }

    func loadKey() throws -> Data? {
        var q = query
        q[kSecReturnData as String] = true
        q[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        switch SecItemCopyMatching(q as CFDictionary, &item) {
        case errSecSuccess: return item as? Data
        case errSecItemNotFound: return nil
        // errSecInteractionNotAllowed: before the first unlock after a reboot. Transient: throw,
        // so the caller does not mistake it for a lost key.
        case let status: throw KeychainError(status: status)
        }
    }

    func saveKey(_ key: Data) throws {
        SecItemDelete(query as CFDictionary)
        var q = query
        q[kSecValueData as String] = key
        q[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        let status = SecItemAdd(q as CFDictionary, nil)
        guard status == errSecSuccess else { throw KeychainError(status: status) }
    }

    func deleteKey() throws {
        let status = SecItemDelete(query as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else { throw KeychainError(status: status) }
    }
}

struct KeychainError: Error, CustomStringConvertible {
    let status: OSStatus
    var description: String { "Keychain error \(status): \(SecCopyErrorMessageString(status, nil) as String? ?? "")" }
}
