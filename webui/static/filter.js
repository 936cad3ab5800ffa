/* Filter the ClassAd table as one types (the form also searches on the server without JavaScript). */
(function () {
  "use strict";
  var input = document.getElementById("ad-search"), rows = document.querySelectorAll("#classad tbody tr");
  if (!input) { return; }
  input.addEventListener("input", function () {
    var q = input.value.toLowerCase();
    rows.forEach(function (r) { r.style.display = r.textContent.toLowerCase().indexOf(q) >= 0 ? "" : "none"; });
  });
})();
