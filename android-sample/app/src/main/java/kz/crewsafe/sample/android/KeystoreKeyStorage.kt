package kz.crewsafe.sample.android

import android.content.Context
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import android.util.Base64
import java.security.KeyStore
import javax.crypto.AEADBadTagException
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec
import kz.crewsafe.sample.core.KeyStorage

/**
 * The store's data key, wrapped with a non-exportable AES-256-GCM key in the Android Keystore
 * and saved (IV + ciphertext, base64) in SharedPreferences. The Keystore key is *not* bound to
 * user authentication or an unlocked device: an SOS must work on a locked phone.
 */
class KeystoreKeyStorage(context: Context) : KeyStorage {
    private val prefs = context.getSharedPreferences("crewsafe-key", Context.MODE_PRIVATE)

    override fun loadKey(): ByteArray? {
        val stored = prefs.getString(PREF_WRAPPED, null) ?: return null
        // Without the Keystore key the wrapped key can never be opened again.
        val wrapping = keyStore().getKey(ALIAS, null) as? SecretKey ?: return null
        val blob = Base64.decode(stored, Base64.NO_WRAP)
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.DECRYPT_MODE, wrapping, GCMParameterSpec(128, blob, 0, IV_BYTES))
        cipher.updateAAD(AAD)
        return try {
            cipher.doFinal(blob, IV_BYTES, blob.size - IV_BYTES)
        } catch (e: AEADBadTagException) {
            null // wrapped by another (since replaced) Keystore key
        }
    }

    override fun saveKey(key: ByteArray) {
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.ENCRYPT_MODE, wrappingKey()) // the Keystore picks a random IV
        cipher.updateAAD(AAD)
        val wrapped = cipher.iv + cipher.doFinal(key)
        // commit(), not apply(): the key must be on disk before the store is created with it.
        val saved = prefs.edit().putString(PREF_WRAPPED, Base64.encodeToString(wrapped, Base64.NO_WRAP)).commit()
        check(saved) { "could not save the wrapped data key" }
    }

    override fun deleteKey() {
        prefs.edit().remove(PREF_WRAPPED).commit()
    }

    private fun keyStore() = KeyStore.getInstance(ANDROID_KEYSTORE).apply { load(null) }

    private fun wrappingKey(): SecretKey {
        (keyStore().getKey(ALIAS, null) as? SecretKey)?.let { return it }
        val spec = KeyGenParameterSpec.Builder(ALIAS, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
            .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
            .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
            .setKeySize(256)
            .setRandomizedEncryptionRequired(true)
            .setUserAuthenticationRequired(false) // usable while the phone is locked
            .build()
        return KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, ANDROID_KEYSTORE)
            .apply { init(spec) }
            .generateKey()
    }

    private companion object {
        const val ANDROID_KEYSTORE = "AndroidKeyStore"
        const val ALIAS = "crewsafe-data-key-wrapper"
        const val PREF_WRAPPED = "wrapped-data-key"
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val IV_BYTES = 12
        val AAD = "crewsafe data key v1".toByteArray()
    }
}
