#!/bin/sh
# Grants the function app's managed identity the Microsoft Graph application permissions the service uses:
#   BackupRestore-Restore.ReadWrite.All   restore and browse sessions (create, activate, read, delete drafts)
#   BackupRestore-Search.Read.All         restore points by point in time (`selection`)
#   BackupRestore-Configuration.Read.All  protection units (`selection` by user, directory object or id)
# Granting application permissions needs a Microsoft Entra role that may do so (Privileged Role Administrator
# or Global Administrator), which the person running `azd up` often lacks. So, as the azd postprovision hook,
# this script only prints what to run unless GRAPH_GRANT_PERMISSIONS=true is set in the azd environment
# (`azd env set GRAPH_GRANT_PERMISSIONS true`). An administrator can run it later with:
#   GRAPH_GRANT_PERMISSIONS=true AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID=<object id> sh infra/hooks/grant-graph-permissions.sh
# Running it twice grants nothing twice.
set -eu

GRAPH_APP_ID=00000003-0000-0000-c000-000000000000  # Microsoft Graph
PERMISSIONS="BackupRestore-Restore.ReadWrite.All BackupRestore-Search.Read.All BackupRestore-Configuration.Read.All"

principal="${AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID:-}"
if [ -z "$principal" ] && command -v azd >/dev/null 2>&1; then
  principal="$(azd env get-value AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID 2>/dev/null || true)"
fi
if [ -z "$principal" ]; then
  echo "AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID is not set: run 'azd provision' first" >&2
  exit 1
fi

if [ "${GRAPH_GRANT_PERMISSIONS:-false}" != "true" ]; then
  cat <<TEXT

Microsoft Graph permissions are NOT granted yet. The function app's identity (object id $principal) needs
the application permissions $PERMISSIONS.
An administrator who may grant application permissions runs, from this directory:

  GRAPH_GRANT_PERMISSIONS=true AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID=$principal sh infra/hooks/grant-graph-permissions.sh

or sets 'azd env set GRAPH_GRANT_PERMISSIONS true' before 'azd provision'. Until then Graph answers 403 and
every restore ends in restore.session.failed with the code Forbidden (README: "Deploying to Azure").

TEXT
  exit 0
fi

graph_sp="$(az ad sp show --id "$GRAPH_APP_ID" --query id --output tsv)"
granted="$(az rest --method GET \
  --uri "https://graph.microsoft.com/v1.0/servicePrincipals/$principal/appRoleAssignments" \
  --query "value[?resourceId=='$graph_sp'].appRoleId" --output tsv)"
for permission in $PERMISSIONS; do
  role="$(az ad sp show --id "$GRAPH_APP_ID" --query "appRoles[?value=='$permission'].id | [0]" --output tsv)"
  if [ -z "$role" ]; then
    echo "$permission: Microsoft Graph has no such application permission in this tenant" >&2
    exit 1
  fi
  if printf '%s\n' "$granted" | grep -qx "$role"; then
    echo "$permission: already granted"
    continue
  fi
  az rest --method POST \
    --uri "https://graph.microsoft.com/v1.0/servicePrincipals/$principal/appRoleAssignments" \
    --headers "Content-Type=application/json" \
    --body "{\"principalId\": \"$principal\", \"resourceId\": \"$graph_sp\", \"appRoleId\": \"$role\"}" \
    --output none
  echo "$permission: granted"
done
