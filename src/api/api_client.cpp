#include "api/api_client.hpp"

#include <curl/curl.h>
#include <sys/stat.h>

#include <memory>
#include <mutex>

namespace strata::api {

namespace {

size_t append(char* data, size_t size, size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
}

}  // namespace

Result<ApiReply> api_call(const std::string& socket_path, std::string_view method, std::string_view path,
                          std::string_view body, std::chrono::milliseconds timeout) {
    struct stat st {};
    if (::stat(socket_path.c_str(), &st) != 0) return fail_errno("API socket {}", socket_path);
    if (!S_ISSOCK(st.st_mode)) return fail("API socket {}: not a socket", socket_path);

    static std::once_flag initialised;
    std::call_once(initialised, [] { curl_global_init(CURL_GLOBAL_NOTHING); });
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) return fail("API socket {}: libcurl could not start a request", socket_path);

    ApiReply reply;
    std::string url = fmt::format("http://localhost{}", path);
    std::string verb(method);
    char error[CURL_ERROR_SIZE] = "";
    curl_slist* headers = nullptr;
    if (!body.empty()) headers = curl_slist_append(headers, "Content-Type: application/json");
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(headers, curl_slist_free_all);
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket_path.c_str());
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, verb.c_str());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
    if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (!body.empty() || method == "PUT" || method == "POST") {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    if (CURLcode code = curl_easy_perform(c); code != CURLE_OK) {
        std::string why = error[0] ? error : curl_easy_strerror(code);
        if (code == CURLE_COULDNT_CONNECT) why = "nobody is listening (the VM is gone?): " + why;
        return fail("API socket {}: {}", socket_path, why);
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
    return reply;
}

}  // namespace strata::api
